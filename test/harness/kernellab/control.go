package kernellab

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// control is the host's end of the command channel (Config.Control): qemu
// serves the guest's ttyS3 on a unix socket; /init reads one command per
// line ("<id> <base64 script>"), runs it with sh and answers
// "@@KLCTL <id> <exit status> <size>" followed by the output.
type control struct {
	mu   sync.Mutex // one command at a time
	r    *bufio.Reader
	seq  int
	cmu  sync.Mutex // conn, which close (the guest stopped) may end under a running command
	conn net.Conn
}

func (c *control) set(conn net.Conn) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.conn != nil {
		c.conn.Close()
	}
	c.conn = conn
}

func (c *control) get() net.Conn {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.conn
}

func (c *control) close() { c.set(nil) }

// Exec runs script with sh, as root, in the running guest (Config.Control)
// and returns its output (stdout and stderr) and exit status. Commands run
// one at a time; one that starts a long-running process must detach it
// (setsid, output to a file). An error means the channel failed (guest
// gone, ctx done), not that the script failed.
func (g *Guest) Exec(ctx context.Context, script string) ([]byte, int, error) {
	if g.ctlPath == "" {
		return nil, -1, fmt.Errorf("kernellab: Exec needs Config.Control")
	}
	c := &g.ctl
	c.mu.Lock()
	defer c.mu.Unlock()
	conn := c.get()
	if conn == nil {
		for {
			select {
			case <-g.done:
				return nil, -1, fmt.Errorf("kernellab: the guest has stopped")
			default:
			}
			var d net.Dialer
			var err error
			conn, err = d.DialContext(ctx, "unix", g.ctlPath)
			if err == nil {
				break
			}
			select {
			case <-g.done:
				return nil, -1, fmt.Errorf("kernellab: the guest has stopped")
			case <-ctx.Done():
				return nil, -1, fmt.Errorf("kernellab: control channel: %w", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		c.set(conn)
		c.r = bufio.NewReader(conn)
	}
	c.seq++
	id := strconv.Itoa(c.seq)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	fail := func(err error) ([]byte, int, error) {
		c.set(nil)
		return nil, -1, fmt.Errorf("kernellab: control channel: %w", err)
	}
	if _, err := fmt.Fprintf(conn, "%s %s\n", id, base64.StdEncoding.EncodeToString([]byte(script))); err != nil {
		return fail(err)
	}
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return fail(err)
		}
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "@@KLCTL" {
			continue // noise before the answer (nothing else writes ttyS3)
		}
		rc, err1 := strconv.Atoi(f[2])
		n, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || n < 0 {
			return fail(fmt.Errorf("bad answer %q", line))
		}
		out := make([]byte, n)
		if _, err := io.ReadFull(c.r, out); err != nil {
			return fail(err)
		}
		if f[1] != id {
			continue // the answer to a command whose caller gave up
		}
		return out, rc, nil
	}
}
