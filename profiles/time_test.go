package profiles

import "time"

type timeT = time.Time

var fixedTime = time.Date(2025, 10, 21, 22, 11, 24, 0, time.Local)
