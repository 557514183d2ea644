// Package mailgen generates realistic, deterministic test mail for a hibachi
// catering business (bookings, payments, refunds, invoices, inquiries),
// together with what a correct importer must store for each message.
//
// The same seed and count always give byte-identical messages, and Each
// streams them, so tests, the demo server and benchmarks of 50,000 messages
// share one source without holding a mailbox in memory.
package mailgen

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/myhibachi/backfill/message"
)

// Mail is one generated message and what an importer must make of it.
type Mail struct {
	Raw          []byte    // the message as delivered, CRLF line ends
	InternalDate time.Time // IMAP INTERNALDATE to append it with, whole seconds, UTC
	Flags        []string  // IMAP flags to append it with, such as `\Seen`
	Want         Expected
	// DuplicateOf is the index, in generation order, of the earlier Mail
	// whose exact bytes this one repeats (the same message delivered twice),
	// or -1. An importer keeps one row for both.
	DuplicateOf int
	Traits      Traits
}

// Expected is what a correct importer stores for a Mail, in the terms of
// message.Message.
type Expected struct {
	MessageID   string // without angle brackets; "" when the message deliberately has none
	Subject     string // decoded
	FromAddress string
	FromName    string // decoded; "" for a bare address
	To          []string
	Cc          []string
	ThreadID    string // threading.ID(Subject, FromAddress, To)
	Attachments []message.Attachment
	// TextContains and HTMLContains are distinctive decoded snippets of the
	// text/plain and text/html bodies, "" when the message has no such part.
	// Each holds non-ASCII characters when the body's language has them, so a
	// wrong charset shows.
	TextContains string
	HTMLContains string
	InReplyTo    string   // without angle brackets
	References   []string // without angle brackets, oldest first
	SentAt       time.Time
}

// Layout is the shape of a message's readable body.
type Layout int

// The body layouts.
const (
	PlainOnly   Layout = iota // a text/plain part only
	HTMLOnly                  // a text/html part only
	Alternative               // multipart/alternative of text/plain and text/html
)

func (l Layout) String() string {
	switch l {
	case PlainOnly:
		return "plain"
	case HTMLOnly:
		return "html"
	default:
		return "alternative"
	}
}

// Traits records how a Mail was built, so tests can pick the cases they need
// (a koi8-r body, an RFC 2231 filename, the third message of a thread).
type Traits struct {
	Locale         string // en, de, fr, es, ru or ja: the language of the body
	Charset        string // charset of the text parts, lowercase MIME name
	TextEncoding   string // Content-Transfer-Encoding of the first text part
	Layout         Layout
	Automated      bool // sent by a payment processor or the booking form
	Thread         int  // conversation number, from 0
	Position       int  // place in the conversation, 0 for the first message
	EncodedHeaders bool // Subject or a display name is RFC 2047 encoded
	RFC2231        bool // an attachment filename uses RFC 2231 encoding
}

// Options tunes the mix. Start from DefaultOptions: a zero field means zero.
type Options struct {
	AttachmentRatio  float64   // share of messages with attachments
	DuplicateRatio   float64   // share of deliveries that repeat an earlier message byte for byte
	NoMessageIDRatio float64   // share of messages without a Message-ID header
	Start            time.Time // INTERNALDATE of the first message; zero means the default
	// AttachmentMin and AttachmentMax, when AttachmentMax > 0, bound every
	// attachment's decoded size in bytes instead of the sizes typical of its
	// kind (2 KB to 350 KB): benchmarks use them for attachment-heavy
	// mailboxes. Unset, the output is the same as before they existed.
	AttachmentMin, AttachmentMax int
}

// DefaultOptions is the mix Each and Generate use: a fifth of the messages
// with attachments (the average message is then about 47 KB), one in two
// hundred delivered twice, one in a hundred without a Message-ID.
func DefaultOptions() Options {
	return Options{
		AttachmentRatio:  0.2,
		DuplicateRatio:   0.005,
		NoMessageIDRatio: 0.01,
		Start:            defaultStart,
	}
}

var defaultStart = time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC)

// Each generates n messages from seed with the default options and calls fn
// with each, in order. It stops at the first error fn returns and returns it.
// fn may keep the Mail: nothing in it is reused.
func Each(seed int64, n int, fn func(Mail) error) error {
	return DefaultOptions().Each(seed, n, fn)
}

// Generate returns n messages from seed with the default options. For large
// n prefer Each, which does not hold them all.
func Generate(seed int64, n int) []Mail {
	return DefaultOptions().Generate(seed, n)
}

// Generate returns n messages from seed with these options.
func (o Options) Generate(seed int64, n int) []Mail {
	out := make([]Mail, 0, n)
	_ = o.Each(seed, n, func(m Mail) error { //nolint:errcheck // fn never fails
		out = append(out, m)
		return nil
	})
	return out
}

// Each generates n messages from seed with these options and calls fn with
// each, in order. It stops at the first error fn returns and returns it.
func (o Options) Each(seed int64, n int, fn func(Mail) error) error {
	if o.Start.IsZero() {
		o.Start = defaultStart
	}
	g := &gen{
		o:     o,
		r:     rand.New(rand.NewPCG(uint64(seed), 0x6d61696c67656e)), // "mailgen"
		clock: o.Start.UTC().Truncate(time.Second),
	}
	for i := range n {
		m := g.next(i)
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// gen holds the state of one run: the clock, the conversations still open,
// and recent messages that may be delivered again.
type gen struct {
	o       Options
	r       *rand.Rand
	clock   time.Time
	open    []*thread
	threads int
	recent  []recentMail
}

type recentMail struct {
	index int
	mail  Mail
}

const (
	maxOpenThreads = 12 // conversations interleave like a real inbox
	recentKept     = 64
)

func (g *gen) next(i int) Mail {
	// Deliveries are minutes to hours apart; the mean keeps 10,000 messages
	// within about a year.
	g.clock = g.clock.Add(time.Duration(30+g.r.IntN(90*60)) * time.Second)

	if len(g.recent) > 0 && g.r.Float64() < g.o.DuplicateRatio {
		orig := g.recent[g.r.IntN(len(g.recent))]
		// A copy shares nothing with the original, so callers may change
		// either.
		m := orig.mail
		m.Raw = slices.Clone(m.Raw)
		m.Flags = slices.Clone(m.Flags)
		m.Want.To = slices.Clone(m.Want.To)
		m.Want.Cc = slices.Clone(m.Want.Cc)
		m.Want.Attachments = slices.Clone(m.Want.Attachments)
		m.Want.References = slices.Clone(m.Want.References)
		m.InternalDate = g.clock
		m.DuplicateOf = orig.index
		return m
	}

	var t *thread
	if len(g.open) == 0 || (len(g.open) < maxOpenThreads && g.r.IntN(100) < 45) {
		t = g.newThread()
		g.open = append(g.open, t)
	} else {
		t = g.open[g.r.IntN(len(g.open))]
	}
	m := g.build(t, i)
	t.pos++
	if t.pos >= t.length {
		g.open = slices.DeleteFunc(g.open, func(x *thread) bool { return x == t })
	}
	if m.Want.MessageID != "" {
		if len(g.recent) == recentKept {
			g.recent = slices.Delete(g.recent, 0, 1)
		}
		g.recent = append(g.recent, recentMail{index: i, mail: m})
	}
	return m
}

// pick returns a random element.
func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// chance is true with probability percent/100.
func chance(r *rand.Rand, percent int) bool { return r.IntN(100) < percent }
