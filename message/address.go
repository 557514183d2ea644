package message

import (
	"net/mail"
	"regexp"
	"strings"
)

var addressParser = &mail.AddressParser{WordDecoder: wordDecoder}

// addressList returns the bare local@domain addresses in the given header
// values (a header may appear more than once), as sent. Group syntax is
// flattened. A list net/mail cannot parse is searched for anything shaped
// like an address rather than dropped.
func addressList(values []string, hint string) []string {
	v := strings.TrimSpace(decode8bit(strings.Join(values, ", "), hint))
	out := []string{}
	if v == "" {
		return out
	}
	list, err := parseAddressList(v)
	if err != nil {
		return cleanAll(lenientAddresses(v))
	}
	for _, a := range list {
		out = append(out, a.Address)
	}
	return cleanAll(out)
}

// parseAddressList tries net/mail on the value as it is and, failing that,
// with encoded words decoded first: some mailers encode a whole
// "Name <address>" as one word.
func parseAddressList(v string) ([]*mail.Address, error) {
	list, err := addressParser.ParseList(strings.TrimRight(v, ", \t"))
	if err == nil {
		return list, nil
	}
	if d := decodeWords(v); d != v {
		if list, err2 := addressParser.ParseList(strings.TrimRight(d, ", \t")); err2 == nil {
			return list, nil
		}
	}
	return nil, err
}

// fromAddress returns the first address in From and its display name.
func fromAddress(values []string, hint string) (addr, name string) {
	if len(values) == 0 {
		return "", ""
	}
	v := strings.TrimSpace(decode8bit(values[0], hint))
	if v == "" {
		return "", ""
	}
	if list, err := parseAddressList(v); err == nil && len(list) > 0 {
		addr, name = list[0].Address, list[0].Name
	} else {
		if all := lenientAddresses(v); len(all) > 0 {
			addr = all[0]
		}
		name = v
		if i := strings.IndexByte(v, '<'); i >= 0 {
			name = v[:i]
		} else if addr != "" {
			name = ""
		}
		name = strings.Trim(strings.TrimSpace(name), `"' `)
	}
	// net/mail leaves encoded words inside quoted strings alone; senders
	// write them there anyway.
	return strings.TrimSpace(CleanText(addr)), headerText(name, hint)
}

// lenientAddress finds <address> forms and bare local@domain tokens, in
// order, outside quoted strings and comments.
var lenientAddress = regexp.MustCompile(`<([^<>\s]+@[^<>\s]+)>|([^\s<>()\[\],;:"@]+@[^\s<>()\[\],;:"@]+)`)

var quotedOrComment = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|\([^()]*\)`)

func lenientAddresses(v string) []string {
	v = quotedOrComment.ReplaceAllString(v, " ")
	out := []string{}
	for _, m := range lenientAddress.FindAllStringSubmatch(v, -1) {
		a := m[1]
		if a == "" {
			a = m[2]
		}
		// A dot after the address ends the sentence it stands in; the
		// local part is kept as written, dots and all.
		a = strings.TrimRight(a, ".")
		if local, domain, ok := strings.Cut(a, "@"); ok && local != "" && domain != "" {
			out = append(out, a)
		}
	}
	return out
}
