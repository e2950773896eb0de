package proc

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/windows"
)

var getExtendedTCPTable = windows.NewLazySystemDLL("iphlpapi.dll").NewProc("GetExtendedTcpTable")

// tcpTableOwnerPIDListener asks GetExtendedTcpTable for the listening
// sockets with their owners' process IDs (TCP_TABLE_OWNER_PID_LISTENER).
const tcpTableOwnerPIDListener = 3

// OwnsListener reports whether the process pid, or one of its
// descendants, owns the socket listening on TCP port (IPv4 or IPv6, any
// address), as GetExtendedTcpTable tells. known is false when no
// listening socket on the port is visible.
func OwnsListener(pid, port int) (owns, known bool) {
	owners := map[int]bool{}
	// Rows: MIB_TCPROW_OWNER_PID (24 bytes: local port at 8, owner at 20)
	// and MIB_TCP6ROW_OWNER_PID (56 bytes: local port at 20, owner at 52).
	for _, t := range []struct {
		family            uint32
		size, port, owner int
	}{{windows.AF_INET, 24, 8, 20}, {windows.AF_INET6, 56, 20, 52}} {
		rows, ok := tcpTable(t.family)
		if !ok {
			continue
		}
		for len(rows) >= t.size {
			r := rows[:t.size]
			rows = rows[t.size:]
			// The port is in network order in the low 16 bits of its DWORD.
			// Wine reports every owner as 0 (the idle process, which owns
			// nothing on Windows): that says nothing.
			if owner := int(binary.LittleEndian.Uint32(r[t.owner:])); owner != 0 && int(binary.BigEndian.Uint16(r[t.port:t.port+2])) == port {
				owners[owner] = true
			}
		}
	}
	if len(owners) == 0 {
		return false, false
	}
	for _, p := range descendants(pid, children()) {
		if owners[p] {
			return true, true
		}
	}
	return false, true
}

// tcpTable returns the rows of the listening sockets' table for family,
// after its leading row count.
func tcpTable(family uint32) ([]byte, bool) {
	size := uint32(16 << 10)
	for range 4 { // the table may grow between the calls
		buf := make([]byte, size)
		r, _, _ := getExtendedTCPTable.Call(uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0, uintptr(family), tcpTableOwnerPIDListener, 0)
		switch windows.Errno(r) {
		case 0:
			n := binary.LittleEndian.Uint32(buf)
			rows := buf[4:size]
			if family == windows.AF_INET {
				return rows[:min(len(rows), int(n)*24)], true
			}
			return rows[:min(len(rows), int(n)*56)], true
		case windows.ERROR_INSUFFICIENT_BUFFER:
			continue
		default:
			return nil, false
		}
	}
	return nil, false
}

// children maps each process to those it started, from a process snapshot.
func children() map[int][]int {
	out := map[int][]int{}
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return out
	}
	defer windows.CloseHandle(snap)
	e := windows.ProcessEntry32{Size: uint32(unsafe.Sizeof(windows.ProcessEntry32{}))}
	for err = windows.Process32First(snap, &e); err == nil; err = windows.Process32Next(snap, &e) {
		if e.ProcessID != e.ParentProcessID {
			out[int(e.ParentProcessID)] = append(out[int(e.ParentProcessID)], int(e.ProcessID))
		}
	}
	return out
}
