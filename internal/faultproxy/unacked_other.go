//go:build !linux

package faultproxy

import (
	"errors"
	"net"
)

// unacked is only known on Linux; elsewhere a reset does not wait, and the
// client may read fewer bytes than the rule says.
func unacked(*net.TCPConn) (int, error) {
	return 0, errors.ErrUnsupported
}
