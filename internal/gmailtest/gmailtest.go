// Package gmailtest runs an in-process IMAP server on loopback that speaks
// Gmail's X-GM-EXT-1 as Google documents it
// (https://developers.google.com/gmail/imap/imap-extensions), for tests:
// labels are folders, [Gmail]/All Mail holds every message once (Spam and
// Trash aside), LIST always carries the special-use attributes, and FETCH
// answers X-GM-MSGID, X-GM-THRID and X-GM-LABELS. It is go-imap's imapserver
// and imapmemserver (patched for these items, see third_party/go-imap); the
// server's own part is the account: which message is in which folder, with
// which ids and labels.
package gmailtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// Username is the account's user name.
const Username = "payments@example.com"

// The folders Gmail shows every account, and the labels that put a message
// in them.
const (
	Inbox     = "INBOX"
	AllMail   = "[Gmail]/All Mail"
	SentMail  = "[Gmail]/Sent Mail"
	Starred   = "[Gmail]/Starred"
	Important = "[Gmail]/Important"
	Drafts    = "[Gmail]/Drafts"
	Spam      = "[Gmail]/Spam"
	Trash     = "[Gmail]/Trash"
)

// systemFolders maps Gmail's system labels to their folders and special-use
// attributes (RFC 6154, RFC 8457 for \Important).
var systemFolders = []struct {
	label, folder string
	use           imap.MailboxAttr
}{
	{`\Inbox`, Inbox, ""},
	{"", AllMail, imap.MailboxAttrAll},
	{`\Sent`, SentMail, imap.MailboxAttrSent},
	{`\Starred`, Starred, imap.MailboxAttrFlagged},
	{`\Important`, Important, imap.MailboxAttrImportant},
	{`\Draft`, Drafts, imap.MailboxAttrDrafts},
	{`\Spam`, Spam, imap.MailboxAttrJunk},
	{`\Trash`, Trash, imap.MailboxAttrTrash},
}

// Message is one message in the account.
type Message struct {
	Raw   []byte
	Date  time.Time   // INTERNALDATE
	Flags []imap.Flag // \Seen, \Flagged, keywords: FLAGS
	// Labels are system labels (\Inbox, \Sent, \Starred, \Important,
	// \Draft, \Spam, \Trash) and user labels, in UTF-8; each is a folder
	// the message appears in. Every message but those in Spam or Trash is
	// also in All Mail.
	Labels []string
	// ThreadID is its X-GM-THRID; 0 starts a thread of its own (the
	// message's X-GM-MSGID, as Gmail does).
	ThreadID uint64
}

// Server is a running Gmail-like server with one account.
type Server struct {
	Username, Password string

	user *imapmemserver.User
	imap *imapserver.Server
	ln   net.Listener

	mu      sync.Mutex
	folders map[string][]entry // by name, in UID order
	nextID  uint64
	bodies  atomic.Int64 // whole messages (BODY[]) sent
}

// entry is a message as one folder holds it.
type entry struct {
	uid imap.UID
	msg *stored
}

type stored struct {
	Message
	msgID uint64
}

// Start runs a server on 127.0.0.1 on a free port with the folders every
// Gmail account has, empty, and closes it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		Username: Username,
		Password: randomPassword(),
		folders:  map[string][]entry{},
		// Gmail's ids are 64-bit and large; starting high catches a
		// column or a conversion too small for them.
		nextID: 1_600_000_000_000_000_000,
	}
	s.user = imapmemserver.NewUser(s.Username, s.Password)
	for _, f := range systemFolders {
		if err := s.create(f.folder); err != nil {
			tb.Fatalf("gmailtest: %v", err)
		}
	}
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{UserSession: imapmemserver.NewUserSession(s.user), srv: s}, nil, nil
		},
		// Gmail is an IMAP4rev1 server.
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapGmailExt1: {}, imap.CapSpecialUse: {}, imap.CapChildren: {}},
		InsecureAuth: true, // loopback only
		// Connections can outlive the test by a moment; a test's log
		// panics then.
		Logger: log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("gmailtest: %v", err)
	}
	s.ln = ln
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = s.imap.Serve(ln) // fails only once Close has run
	}()
	tb.Cleanup(func() {
		s.imap.Close()
		ln.Close()
		<-served
	})
	return s
}

// Add stores m in the folders its labels name (creating user labels'
// folders as needed) and in All Mail, and returns its X-GM-MSGID.
func (s *Server) Add(tb testing.TB, m Message) uint64 {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID += 7919 // increasing, not consecutive, as Gmail's
	st := &stored{Message: m, msgID: s.nextID}
	if st.ThreadID == 0 {
		st.ThreadID = st.msgID
	}
	for _, name := range folderNames(m.Labels) {
		if _, ok := s.folders[name]; !ok {
			if err := s.create(name); err != nil {
				tb.Fatalf("gmailtest: %v", err)
			}
		}
		// The memory server keeps the folder's UIDs and answers SELECT,
		// SEARCH and STATUS; FETCH is answered from here.
		data, err := s.user.Append(name, bytes.NewReader(m.Raw), &imap.AppendOptions{Time: m.Date, Flags: m.Flags})
		if err != nil {
			tb.Fatalf("gmailtest: append to %s: %v", name, err)
		}
		s.folders[name] = append(s.folders[name], entry{uid: data.UID, msg: st})
	}
	return st.msgID
}

// folderNames are the folders a message with these labels appears in.
func folderNames(labels []string) []string {
	var out []string
	inAll := true
	for _, l := range labels {
		name := l
		for _, f := range systemFolders {
			if f.label != "" && strings.EqualFold(l, f.label) {
				name = f.folder
			}
		}
		if strings.HasPrefix(name, `\`) {
			continue // a system label without a folder
		}
		if name == Spam || name == Trash {
			inAll = false
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if inAll {
		out = append(out, AllMail)
	}
	return out
}

// Addr returns host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the folder as backfill's inbox configuration spells it, such
// as imap://payments%40example.com@127.0.0.1:1143/%5BGmail%5D%2FAll%20Mail.
func (s *Server) URL(folder string) string {
	u := url.URL{Scheme: "imap", User: url.User(s.Username), Host: s.Addr(), Path: "/" + folder}
	return u.String()
}

// Bodies returns how many whole messages (BODY[]) the server has sent, over
// all connections and folders: what a client downloaded in full.
func (s *Server) Bodies() int { return int(s.bodies.Load()) }

func (s *Server) create(name string) error {
	if err := s.user.Create(name, nil); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	s.folders[name] = nil
	return nil
}

// entries returns the folder's messages, in UID order.
func (s *Server) entries(folder string) []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.folders[folder])
}

// session is the memory server's session with Gmail's LIST and FETCH.
type session struct {
	*imapmemserver.UserSession
	srv      *Server
	selected string
}

func (sess *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := sess.UserSession.Select(name, options)
	if err == nil {
		sess.selected = name
	}
	return data, err
}

func (sess *session) Unselect() error {
	sess.selected = ""
	return sess.UserSession.Unselect()
}

// List answers as Gmail does: special-use attributes in every answer,
// [Gmail] a parent that cannot be selected.
func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/'})
	}
	sess.srv.mu.Lock()
	names := []string{"[Gmail]"}
	for name := range sess.srv.folders {
		names = append(names, name)
	}
	sess.srv.mu.Unlock()
	slices.Sort(names)
	for _, name := range names {
		if !slices.ContainsFunc(patterns, func(p string) bool { return imapserver.MatchList(name, '/', ref, p) }) {
			continue
		}
		data := imap.ListData{Mailbox: name, Delim: '/', Attrs: attrs(name, names)}
		if slices.Contains(data.Attrs, imap.MailboxAttrNoSelect) {
			if options.SelectSpecialUse {
				continue
			}
		} else {
			if options.SelectSpecialUse && specialUse(name) == "" {
				continue
			}
			if options.ReturnStatus != nil {
				st, err := sess.UserSession.Status(name, options.ReturnStatus)
				if err != nil {
					return err
				}
				data.Status = st
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

func attrs(name string, all []string) []imap.MailboxAttr {
	var out []imap.MailboxAttr
	if name == "[Gmail]" {
		out = append(out, imap.MailboxAttrNoSelect)
	}
	if slices.ContainsFunc(all, func(n string) bool { return strings.HasPrefix(n, name+"/") }) {
		out = append(out, imap.MailboxAttrHasChildren)
	} else {
		out = append(out, imap.MailboxAttrHasNoChildren)
	}
	if use := specialUse(name); use != "" {
		out = append(out, use)
	}
	return out
}

func specialUse(name string) imap.MailboxAttr {
	for _, f := range systemFolders {
		if f.folder == name {
			return f.use
		}
	}
	return ""
}

// Fetch answers from the account: the memory server knows nothing of
// Gmail's items.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	entries := sess.srv.entries(sess.selected)
	numSet = static(numSet, entries)
	for i, e := range entries {
		seq := uint32(i) + 1
		switch set := numSet.(type) {
		case imap.SeqSet:
			if !set.Contains(seq) {
				continue
			}
		case imap.UIDSet:
			if !set.Contains(e.uid) {
				continue
			}
		}
		if err := sess.srv.write(w.CreateMessage(seq), e, options); err != nil {
			return err
		}
	}
	return nil
}

// write writes one FETCH response, X-GM items first, as Gmail orders them.
func (s *Server) write(w *imapserver.FetchResponseWriter, e entry, options *imap.FetchOptions) error {
	m := e.msg
	w.WriteUID(e.uid)
	if options.GmailThreadID {
		w.WriteGmailThreadID(m.ThreadID)
	}
	if options.GmailMsgID {
		w.WriteGmailMsgID(m.msgID)
	}
	if options.GmailLabels {
		w.WriteGmailLabels(m.Labels)
	}
	if options.Flags {
		w.WriteFlags(m.Flags)
	}
	if options.InternalDate {
		w.WriteInternalDate(m.Date)
	}
	if options.RFC822Size {
		w.WriteRFC822Size(int64(len(m.Raw)))
	}
	if options.BodyStructure != nil {
		w.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(m.Raw)))
	}
	for _, bs := range options.BodySection {
		if bs.Specifier == imap.PartSpecifierNone && len(bs.Part) == 0 && bs.Partial == nil {
			s.bodies.Add(1)
		}
		buf := imapserver.ExtractBodySection(bytes.NewReader(m.Raw), bs)
		wc := w.WriteBodySection(bs, int64(len(buf)))
		_, werr := wc.Write(buf)
		if err := errors.Join(werr, wc.Close()); err != nil {
			return err
		}
	}
	return w.Close()
}

// static replaces "*" in numSet by the folder's last number, as the memory
// server does.
func static(numSet imap.NumSet, entries []entry) imap.NumSet {
	switch set := numSet.(type) {
	case imap.SeqSet:
		set = slices.Clone(set)
		last := uint32(len(entries))
		for i := range set {
			set[i].Start, set[i].Stop = staticRange(set[i].Start, set[i].Stop, last)
		}
		return set
	case imap.UIDSet:
		set = slices.Clone(set)
		var last uint32
		if len(entries) > 0 {
			last = uint32(entries[len(entries)-1].uid)
		}
		for i := range set {
			start, stop := staticRange(uint32(set[i].Start), uint32(set[i].Stop), last)
			set[i].Start, set[i].Stop = imap.UID(start), imap.UID(stop)
		}
		return set
	}
	return numSet
}

func staticRange(start, stop, last uint32) (uint32, uint32) {
	if start == 0 {
		start = last
	}
	if stop == 0 {
		stop = last
	}
	return min(start, stop), max(start, stop)
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
