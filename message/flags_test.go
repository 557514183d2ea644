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

func TestAddGmailLabels(t *testing.T) {
	for _, c := range []struct {
		flags, gmail []string
		starred      bool
		labels       []string
	}{
		{nil, nil, false, []string{}},
		{nil, []string{`\Inbox`, `\Important`}, false, []string{`\Important`, `\Inbox`}},
		{nil, []string{`\Starred`}, true, []string{`\Starred`}},
		{[]string{`\Flagged`}, []string{`\Sent`}, true, []string{`\Sent`}},
		// Keywords and labels merge, once each; a system label keeps its
		// backslash beside a user label of the same name.
		{[]string{"$Label1", "Invoices"}, []string{"Invoices", `\Inbox`, "Inbox", "Été", ""}, false,
			[]string{"$Label1", "Inbox", "Invoices", `\Inbox`, "Été"}},
	} {
		m := &Message{}
		m.SetFlags(c.flags)
		m.AddGmailLabels(c.gmail)
		if m.IsStarred != c.starred || !slices.Equal(m.Labels, c.labels) {
			t.Errorf("SetFlags(%q), AddGmailLabels(%q): starred %t labels %q, want %t %q",
				c.flags, c.gmail, m.IsStarred, m.Labels, c.starred, c.labels)
		}
	}
}
