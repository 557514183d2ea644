package mailgen

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// addr is a mailbox as it appears in a header.
type addr struct {
	name  string // display name, "" for a bare address
	email string // lowercase local@domain
}

// thread is one conversation between a customer and the business.
type thread struct {
	id       int
	loc      *locale
	cs       *charset // the customer's mail client charset
	custUA   *client
	staffUA  *client
	customer addr
	first    string // customer's first name for greetings
	inbox    addr   // the business address the conversation is with
	extraTo  []addr // other business addresses on the first message, kept by reply-all
	cc       []addr
	topic    topic
	vars     vars
	base     string // subject without prefixes, decoded
	length   int
	pos      int
	turn     int // customer/staff alternation, not advanced by forwards
	auto     *automated

	// The previous message, for In-Reply-To, References and quoting.
	refs        []string
	lastID      string
	lastSubject string
	lastText    string
	lastHTML    string
	lastFrom    addr
	lastDate    time.Time
	lastLoc     *locale
}

// vars are the template values of one conversation.
type vars struct {
	ref, date, guests, amount, inv, event, city, name, first, n string
}

// expand replaces {key} placeholders in tpl.
func expand(tpl string, v *vars) string {
	if !strings.Contains(tpl, "{") {
		return tpl
	}
	var b strings.Builder
	b.Grow(len(tpl) + 32)
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			return b.String()
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			b.WriteString(tpl)
			return b.String()
		}
		b.WriteString(tpl[:i])
		key := tpl[i+1 : i+j]
		switch key {
		case "ref":
			b.WriteString(v.ref)
		case "date":
			b.WriteString(v.date)
		case "guests":
			b.WriteString(v.guests)
		case "amount":
			b.WriteString(v.amount)
		case "inv":
			b.WriteString(v.inv)
		case "event":
			b.WriteString(v.event)
		case "city":
			b.WriteString(v.city)
		case "name":
			b.WriteString(v.name)
		case "first":
			b.WriteString(v.first)
		case "n":
			b.WriteString(v.n)
		default:
			b.WriteString(tpl[i : i+j+1])
		}
		tpl = tpl[i+j+1:]
	}
}

// threadLengths weights conversations of 1 to 6 messages.
var threadLengths = []int{1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6}

func (g *gen) newThread() *thread {
	r := g.r
	t := &thread{id: g.threads}
	g.threads++

	if chance(r, 12) {
		return g.newAutomatedThread(t)
	}

	t.loc = pickLocale(r)
	t.cs = pick(r, t.loc.charsets)
	t.custUA = pick(r, humanClients)
	t.staffUA = pick(r, staffClients)
	p := pick(r, t.loc.people)
	t.customer = addr{p.name, p.local + "@" + pick(r, t.loc.domains)}
	t.first = p.first
	t.topic = topic(r.IntN(int(numTopics)))
	ib := pick(r, topicInbox(t.topic))
	t.inbox = addr{pick(r, ib.names), ib.addr}
	if chance(r, 10) && ib.addr != inboxEvents.addr {
		t.extraTo = []addr{{pick(r, inboxEvents.names), inboxEvents.addr}}
	}
	if chance(r, 12) {
		q := pick(r, t.loc.people)
		if q.local != p.local {
			t.cc = append(t.cc, addr{q.name, q.local + "@" + pick(r, t.loc.domains)})
		}
	}
	t.length = pick(r, threadLengths)
	t.vars = g.threadVars(t.loc, p)
	t.base = expand(pick(r, t.loc.subjects[t.topic]), &t.vars)
	return t
}

func pickLocale(r *rand.Rand) *locale {
	total := 0
	for _, l := range locales {
		total += l.weight
	}
	x := r.IntN(total)
	for _, l := range locales {
		if x < l.weight {
			return l
		}
		x -= l.weight
	}
	return en
}

func (g *gen) threadVars(loc *locale, p person) vars {
	r := g.r
	event := g.clock.AddDate(0, 0, 7+r.IntN(90))
	guests := 10 + r.IntN(70)
	cents := int64(guests) * int64(5500+r.IntN(3000))
	return vars{
		ref:    "HB-" + event.Format("060102") + "-" + pad(r.IntN(10000), 4),
		date:   localDate(loc, event),
		guests: strconv.Itoa(guests),
		amount: amount(loc, cents),
		inv:    "INV-" + strconv.Itoa(1000+r.IntN(9000)),
		event:  pick(r, loc.events),
		city:   pick(r, loc.cities),
		name:   p.name,
		first:  p.first,
		n:      strconv.Itoa(1000 + r.IntN(9000)),
	}
}

func pad(v, width int) string {
	s := strconv.Itoa(v)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

func localDate(loc *locale, t time.Time) string {
	s := strings.ReplaceAll(loc.dateFmt, "{d}", strconv.Itoa(t.Day()))
	s = strings.ReplaceAll(s, "{m}", loc.months[t.Month()-1])
	return strings.ReplaceAll(s, "{y}", strconv.Itoa(t.Year()))
}

// amount formats cents the way the locale writes money.
func amount(loc *locale, cents int64) string {
	whole, frac := cents/100, pad(int(cents%100), 2)
	ws := strconv.FormatInt(whole, 10)
	group := func(sep string) string {
		var b strings.Builder
		for i, c := range ws {
			if i > 0 && (len(ws)-i)%3 == 0 {
				b.WriteString(sep)
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	switch loc.tag {
	case "de":
		return group(".") + "," + frac + " €"
	case "fr":
		return group(" ") + "," + frac + " €"
	default:
		return "$" + group(",") + "." + frac
	}
}

// automated is a machine sender: a payment processor or the booking form.
type automated struct {
	from     addr
	to       addr
	subjects []string
	layout   Layout
	ua       *client
	replyTo  bool // Reply-To the customer, as web forms do
}

var automatedSenders = []*automated{
	{addr{"Stripe", "notifications@stripe.com"}, addr{"", inboxPayments.addr}, []string{"Payment received: {amount} from {name}", "Payout of {amount} is on the way"}, Alternative, uaAutomated, false},
	{addr{"Square", "noreply@messaging.squareup.com"}, addr{"MyHibachi Payments", inboxPayments.addr}, []string{"You received a payment of {amount}", "Payment of {amount} refunded"}, HTMLOnly, uaAutomated, false},
	{addr{"PayPal", "service@paypal.com"}, addr{"", inboxPayments.addr}, []string{"You've got money: {amount} from {name}", "Notification of payment received"}, HTMLOnly, uaAutomated, false},
	{addr{"MyHibachi Website", "noreply@myhibachichef.com"}, addr{"MyHibachi Customer Service", inboxCS.addr}, []string{"🔥 New booking request from {name}", "New catering inquiry – {guests} guests on {date}"}, HTMLOnly, uaAutomated, true},
	{addr{"QuickBooks", "quickbooks@notification.intuit.com"}, addr{"", inboxPayments.addr}, []string{"Invoice {inv} from MyHibachi Catering", "Payment reminder: Invoice {inv}"}, Alternative, uaAutomated, false},
}

func (g *gen) newAutomatedThread(t *thread) *thread {
	r := g.r
	a := pick(r, automatedSenders)
	t.auto = a
	t.loc = en
	t.cs = csUTF8
	t.custUA = a.ua
	t.length = 1
	// The paying customer can be from anywhere: their name lands in the
	// subject, so automated subjects carry every script too.
	cl := pickLocale(r)
	p := pick(r, cl.people)
	t.customer = addr{p.name, p.local + "@" + pick(r, cl.domains)}
	t.first = p.first
	t.topic = topicPayment
	t.vars = g.threadVars(en, p)
	if p.name == "" {
		t.vars.name = t.customer.email
	}
	t.base = expand(pick(r, a.subjects), &t.vars)
	t.inbox = a.to
	return t
}
