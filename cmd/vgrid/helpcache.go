package main

import (
	"time"

	"github.com/vgrid/vgrid/store"
)

// storeHelpCache keeps vLLM --help outputs in a store this process writes.
type storeHelpCache struct{ st *store.Store }

func (c storeHelpCache) GetHelp(key string) (string, bool) {
	e, ok, err := c.st.Help(key)
	return e.Text, ok && err == nil
}

func (c storeHelpCache) PutHelp(key, text string, args []string) {
	c.st.PutHelp(key, store.HelpEntry{Text: text, Args: args, At: time.Now()}) // a cache: a failed write costs a later ask
}

// pathHelpCache opens the store at path for each operation (vgrid plan,
// vgrid profile set): it reads while another vgrid writes the store, and
// writes only when no other vgrid holds it.
type pathHelpCache struct{ path string }

func (c pathHelpCache) GetHelp(key string) (string, bool) {
	st, err := store.OpenReadOnly(c.path)
	if err != nil {
		return "", false
	}
	defer st.Close()
	return storeHelpCache{st}.GetHelp(key)
}

func (c pathHelpCache) PutHelp(key, text string, args []string) {
	st, err := store.Open(c.path)
	if err != nil {
		return
	}
	defer st.Close()
	storeHelpCache{st}.PutHelp(key, text, args)
}
