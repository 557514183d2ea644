package debtree

import (
	"net"
	"os"
	"testing"
)

// TestListens checks how Launch tells its own server from another one that
// took the port: by who holds the listening socket.
func TestListens(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v", network, err) // a machine without IPv6
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !listens(port, []int{os.Getpid()}) {
			t.Errorf("%s: listens(%d, this process) = false, want true", network, port)
		}
		if listens(port, []int{os.Getppid()}) {
			t.Errorf("%s: listens(%d, the parent) = true, want false", network, port)
		}
		l.Close()
		if listens(port, []int{os.Getpid()}) {
			t.Errorf("%s: listens(%d) after Close = true, want false", network, port)
		}
	}
}
