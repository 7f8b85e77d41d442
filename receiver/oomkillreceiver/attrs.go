package oomkillreceiver

import (
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-oomkill/otelcol-oomkill/receiver/oomkillreceiver/internal/oomparse"
)

// putOpt and putStrIf write an attribute only when the kernel printed its
// value: nothing is made up for what a report left out.
func putOpt(a pcommon.Map, key string, v oomparse.OptInt) {
	if v.Valid {
		a.PutInt(key, v.Value)
	}
}

func putStrIf(a pcommon.Map, key, v string) {
	if v != "" {
		a.PutStr(key, v)
	}
}
