package pgsink

import "testing"

func TestCutOnACharacterBoundary(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
		cut  bool
	}{
		{"hello", 5, "hello", false},
		{"hello", 3, "hel", true},
		{"héllo wörld", 4, "héll", true}, // characters, as varchar(n) counts them, not bytes
		{"日本語テキスト", 3, "日本語", true},
		{"😀😀😀", 2, "😀😀", true},
		{"", 3, "", false},
	} {
		got, cut := cut(c.in, c.n)
		if got != c.want || cut != c.cut {
			t.Errorf("cut(%q, %d) = %q, %v; want %q, %v", c.in, c.n, got, cut, c.want, c.cut)
		}
	}
}
