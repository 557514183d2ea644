package dovecottest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// introspector is an RFC 7662 token introspection endpoint that knows one
// token.
func introspector(t *testing.T, token, user string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		answer := map[string]any{"active": "false"}
		if r.PostForm.Get("token") == token {
			answer = map[string]any{"active": "true", "username": user}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer) //nolint:errcheck // the client sees a short answer
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

// authenticate speaks AUTHENTICATE by hand, as a client would, and returns
// the tagged answer's first word (OK, NO or BAD).
func authenticate(t *testing.T, s *Server, mech, ir string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second)) //nolint:errcheck // a failed read says enough
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("a AUTHENTICATE " + mech + " " + base64.StdEncoding.EncodeToString([]byte(ir)) + "\r\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(line, "+"):
			// The failure challenge: the client must answer before the NO.
			if _, err := conn.Write([]byte("\r\n")); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(line, "a "):
			return strings.Fields(line)[1]
		}
	}
}

// TestOAuth2Passdb checks the oauth2 passdb option: both bearer mechanisms
// log in with a token the endpoint knows, a token it does not know is
// refused, and passwords keep working.
func TestOAuth2Passdb(t *testing.T) {
	t.Parallel()
	ep, requests := introspector(t, "good-token", alice.Name)
	s := NewServer(t, []User{alice}, WithOAuth2(ep.URL+"/introspect"))

	for _, tt := range []struct {
		name, mech, ir, want string
	}{
		{"XOAUTH2 accepted", "XOAUTH2", "user=" + alice.Name + "\x01auth=Bearer good-token\x01\x01", "OK"},
		{"OAUTHBEARER accepted", "OAUTHBEARER", "n,a=" + alice.Name + ",\x01auth=Bearer good-token\x01\x01", "OK"},
		{"XOAUTH2 unknown token", "XOAUTH2", "user=" + alice.Name + "\x01auth=Bearer bad-token\x01\x01", "NO"},
	} {
		if got := authenticate(t, s, tt.mech, tt.ir); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	if requests.Load() == 0 {
		t.Error("the introspection endpoint was never asked")
	}
	login(t, s, alice) // passwords still work
}
