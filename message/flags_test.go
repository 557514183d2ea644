package message

import (
	"slices"
	"testing"
)

func TestSetFlags(t *testing.T) {
	for _, c := range []struct {
		flags         []string
		read, starred bool
		labels        []string
	}{
		{nil, false, false, []string{}},
		{[]string{`\Seen`}, true, false, []string{}},
		{[]string{`\seen`, `\FLAGGED`}, true, true, []string{}},
		{[]string{`\Recent`, `\Answered`, `\Draft`, `\Deleted`}, false, false, []string{}},
		{[]string{"Invoice", `\Flagged`, "$Label1", "Invoice"}, false, true, []string{"$Label1", "Invoice"}},
	} {
		m := &Message{IsRead: true, Labels: []string{"stale"}}
		m.SetFlags(c.flags)
		if m.IsRead != c.read || m.IsStarred != c.starred || !slices.Equal(m.Labels, c.labels) {
			t.Errorf("SetFlags(%q): read %t starred %t labels %q, want %t %t %q",
				c.flags, m.IsRead, m.IsStarred, m.Labels, c.read, c.starred, c.labels)
		}
	}
}
