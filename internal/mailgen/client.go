package mailgen

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
)

// client is the habits of one mail program: reply and forward prefixes,
// Message-ID and boundary shapes, extra headers and the look of its HTML.
type client struct {
	name      string
	reply     string
	forward   string
	idHeader  string
	dateFmt   string
	utc       bool // Outlook writes Date in UTC
	html      int  // htmlGmail, htmlOutlook, htmlApple
	quoteCS   bool // charset="UTF-8" rather than charset=utf-8
	flowed    bool // format=flowed on text/plain
	messageID func(r *rand.Rand, domain string) string
	boundary  func(r *rand.Rand, depth int) string
	extra     func(b *bytes.Buffer, r *rand.Rand)
}

const (
	htmlGmail = iota
	htmlOutlook
	htmlApple
	htmlReceipt
)

var (
	uaGmail = &client{
		name: "gmail", reply: "Re: ", forward: "Fwd: ", idHeader: "Message-ID",
		dateFmt: "Mon, 2 Jan 2006 15:04:05 -0700", html: htmlGmail, quoteCS: true,
		messageID: func(r *rand.Rand, _ string) string {
			return "CA" + randChars(r, 2, alnum) + "+" + randChars(r, 36, b64chars) + "@mail.gmail.com"
		},
		boundary: func(r *rand.Rand, _ int) string { return "000000000000" + randChars(r, 16, lowerHex) },
	}
	uaOutlook = &client{
		name: "outlook", reply: "RE: ", forward: "FW: ", idHeader: "Message-ID",
		dateFmt: "Mon, 2 Jan 2006 15:04:05 -0700", utc: true, html: htmlOutlook, quoteCS: true,
		messageID: func(r *rand.Rand, _ string) string {
			host := pick(r, []string{"BY5PR", "DM6PR", "SN7PR", "PH0PR", "CH2PR"}) + strconv.Itoa(10+r.IntN(10)) + "MB" + strconv.Itoa(1000+r.IntN(9000))
			return host + randChars(r, 32, upperHex) + "@" + host + ".namprd" + strconv.Itoa(10+r.IntN(10)) + ".prod.outlook.com"
		},
		boundary: func(r *rand.Rand, depth int) string {
			return "_00" + strconv.Itoa(depth*4) + "_" + randChars(r, 40, upperAlnum) + "_"
		},
		extra: func(b *bytes.Buffer, r *rand.Rand) {
			b.WriteString("Thread-Index: " + randChars(r, 30, b64chars) + "==\r\n")
			b.WriteString("Accept-Language: en-US\r\nContent-Language: en-US\r\nX-MS-Has-Attach: \r\nX-MS-TNEF-Correlator: \r\n")
		},
	}
	uaApple = &client{
		name: "apple", reply: "Re: ", forward: "Fwd: ", idHeader: "Message-Id",
		dateFmt: "Mon, 2 Jan 2006 15:04:05 -0700", html: htmlApple, flowed: false,
		messageID: func(r *rand.Rand, domain string) string { return uuid(r, true) + "@" + domain },
		boundary: func(r *rand.Rand, _ int) string {
			return "Apple-Mail=_" + uuid(r, true)
		},
		extra: func(b *bytes.Buffer, _ *rand.Rand) {
			b.WriteString("X-Mailer: Apple Mail (2.3774.500.171.1.1)\r\n")
		},
	}
	uaThunderbird = &client{
		name: "thunderbird", reply: "Re: ", forward: "Fwd: ", idHeader: "Message-ID",
		dateFmt: "Mon, 2 Jan 2006 15:04:05 -0700", html: htmlApple, flowed: true,
		messageID: func(r *rand.Rand, domain string) string { return uuid(r, false) + "@" + domain },
		boundary: func(r *rand.Rand, _ int) string {
			return "------------" + randChars(r, 24, alnum)
		},
		extra: func(b *bytes.Buffer, _ *rand.Rand) {
			b.WriteString("User-Agent: Mozilla Thunderbird\r\n")
		},
	}
	uaAutomated = &client{
		name: "automated", reply: "Re: ", forward: "Fwd: ", idHeader: "Message-ID",
		dateFmt: "Mon, 02 Jan 2006 15:04:05 -0700 (MST)", utc: true, html: htmlReceipt,
		messageID: func(r *rand.Rand, domain string) string {
			return randChars(r, 22, alnum) + "." + strconv.Itoa(r.IntN(1e9)) + "@" + domain
		},
		boundary: func(r *rand.Rand, _ int) string {
			return "----=_Part_" + strconv.Itoa(r.IntN(1e6)) + "_" + strconv.Itoa(r.IntN(1e9)) + "." + strconv.FormatInt(1700000000000+r.Int64N(1e11), 10)
		},
		extra: func(b *bytes.Buffer, r *rand.Rand) {
			b.WriteString("X-Mailer: SendGrid\r\nList-Unsubscribe: <https://u" + strconv.Itoa(r.IntN(1e7)) + ".ct.sendgrid.net/unsub>\r\nAuto-Submitted: auto-generated\r\n")
		},
	}
	humanClients = []*client{uaGmail, uaGmail, uaGmail, uaOutlook, uaOutlook, uaApple, uaThunderbird}
	staffClients = []*client{uaGmail, uaGmail, uaOutlook}
)

const (
	alnum      = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b64chars   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	lowerHex   = "0123456789abcdef"
)

// randChars returns n characters from set, ten per random number.
func randChars(r *rand.Rand, n int, set string) string {
	b := make([]byte, n)
	var x uint64
	for i := range b {
		if i%10 == 0 {
			x = r.Uint64()
		}
		b[i] = set[int(x%64)%len(set)]
		x >>= 6
	}
	return string(b)
}

func uuid(r *rand.Rand, upper bool) string {
	set := lowerHex
	if upper {
		set = upperHex
	}
	s := randChars(r, 32, set)
	return strings.Join([]string{s[:8], s[8:12], s[12:16], s[16:20], s[20:]}, "-")
}
