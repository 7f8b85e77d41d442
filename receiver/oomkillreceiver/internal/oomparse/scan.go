package oomparse

import "strings"

// OptInt is an integer the kernel may or may not have printed (fields were
// added over the years).
type OptInt struct {
	Value int64
	Valid bool
}

// scanner consumes a kernel-formatted trailer left to right. Once a step
// fails, ok stays false and later steps do nothing.
type scanner struct {
	s  string
	ok bool
}

func (sc *scanner) lit(l string) {
	if sc.ok && strings.HasPrefix(sc.s, l) {
		sc.s = sc.s[len(l):]
		return
	}
	sc.ok = false
}

// try consumes l if it comes next.
func (sc *scanner) try(l string) bool {
	if sc.ok && strings.HasPrefix(sc.s, l) {
		sc.s = sc.s[len(l):]
		return true
	}
	return false
}

// spaces consumes any run of blanks (at least none).
func (sc *scanner) spaces() {
	if sc.ok {
		sc.s = strings.TrimLeft(sc.s, " ")
	}
}

// num consumes an optionally signed decimal.
func (sc *scanner) num() OptInt {
	if !sc.ok {
		return OptInt{}
	}
	neg := false
	s := sc.s
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	v, n := leadingUint(s)
	if n == 0 {
		sc.ok = false
		return OptInt{}
	}
	sc.s = s[n:]
	if neg {
		v = -v
	}
	return OptInt{Value: v, Valid: true}
}

// kb consumes "%lukB".
func (sc *scanner) kb() OptInt {
	v := sc.num()
	sc.lit("kB")
	if !sc.ok {
		return OptInt{}
	}
	return v
}

// leadingUint parses the decimal digits at the start of s, returning the
// value and how many bytes it used (0 when there is no digit or it
// overflows int64).
func leadingUint(s string) (int64, int) {
	var v int64
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		d := int64(s[n] - '0')
		if v > (1<<63-1-d)/10 {
			return 0, 0
		}
		v = v*10 + d
		n++
	}
	return v, n
}

// parseUint parses s as a whole decimal.
func parseUint(s string) (int64, bool) {
	v, n := leadingUint(s)
	return v, n > 0 && n == len(s)
}
