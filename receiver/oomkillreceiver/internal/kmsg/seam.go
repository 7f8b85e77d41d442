package kmsg

import (
	"fmt"
	"time"
)

// The types below mirror the receiver's seam between where kernel lines
// come from and what is done with them (a source of kernel lines, being
// introduced beside this package); once it lands, they are its types and
// Reader implements its interface unchanged.

// Origin is who printed a line, and in which boot.
type Origin struct {
	Kernel bool
	Writer string
	BootID string
	Stored time.Time
}

// Stamp is when and where the kernel printed a line.
type Stamp struct {
	Time          time.Time
	MonotonicUsec uint64
	Host          string
}

// SeamPosition is where a line is, as the checkpoint keeps it.
type SeamPosition struct {
	Cursor string
	Time   time.Time
}

// IsZero reports whether p names no line.
func (p SeamPosition) IsZero() bool { return p.Cursor == "" }

// Gap is the error Next returns when lines were lost between two reads.
type Gap struct {
	Lost int64
	Why  string
}

func (g *Gap) Error() string {
	if g.Lost < 0 {
		return "kernel log lines lost: " + g.Why
	}
	return fmt.Sprintf("%d kernel log lines lost: %s", g.Lost, g.Why)
}
