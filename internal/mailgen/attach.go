package mailgen

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// Attachment bodies are a realistic head (PDF objects, PNG chunks) around
// filler taken from one shared pseudo-random pool. The pool is also kept
// base64-encoded in 57-byte lines, so most of an attachment is a copy of
// already encoded lines instead of fresh encoding: that is what keeps 10,000
// messages (about 475 MB) well under two seconds.
const poolLines = 48000 // 2.7 MB of filler, more than the largest attachment

var pool struct {
	once sync.Once
	raw  []byte // poolLines*57 bytes
	enc  []byte // poolLines*78 bytes: 76 base64 characters and CRLF per line
}

func fillerPool() (raw, enc []byte) {
	pool.once.Do(func() {
		pool.raw = make([]byte, poolLines*57)
		// A fixed seed: the pool is the same in every process, whatever the
		// generator's seed, so output stays byte-identical.
		rand.NewChaCha8([32]byte{'m', 'a', 'i', 'l', 'g', 'e', 'n'}).Read(pool.raw) //nolint:errcheck // never fails
		var buf bytes.Buffer
		buf.Grow(poolLines * 78)
		w := b64Lines{dst: &buf}
		w.Write(pool.raw)
		pool.enc = buf.Bytes()
	})
	return pool.raw, pool.enc
}

// writeFiller writes n filler bytes through w and returns them (a slice of
// the pool) for checksums.
func writeFiller(w *b64Lines, r *rand.Rand, n int) []byte {
	raw, enc := fillerPool()
	k := (57 - w.n) % 57 // bytes that complete the current line
	k = min(k, n)
	lines := (n - k) / 57
	// Line j of the pool starts at byte 57*j; start k bytes before it so the
	// copied lines begin exactly where the writer's line does.
	j := 1 + r.IntN(poolLines-lines-1)
	off := 57*j - k
	w.Write(raw[off : off+k])
	if lines > 0 {
		w.dst.Write(enc[j*78 : (j+lines)*78])
	}
	rest := n - k - lines*57
	w.Write(raw[57*(j+lines) : 57*(j+lines)+rest])
	return raw[off : off+n]
}

// attachmentKind is the format of a generated attachment.
type attachmentKind int

const (
	kindPDF attachmentKind = iota
	kindPNG
	kindCSV
)

// maxAttachment bounds filler so it always fits in the pool.
const maxAttachment = (poolLines - 100) * 57

// writePDF writes a PDF with one compressed-looking content stream and
// returns its decoded size.
func writePDF(w *b64Lines, r *rand.Rand, size int, title string) int {
	var head []byte
	head = append(head, "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"...)
	head = append(head, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"...)
	head = append(head, "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"...)
	head = append(head, "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>\nendobj\n"...)
	tail := []byte("\nendstream\nendobj\n5 0 obj\n<< /Title (" + title + ") /Producer (QuickBooks Online) >>\nendobj\n" +
		"trailer\n<< /Size 6 /Root 1 0 R /Info 5 0 R >>\nstartxref\n")
	n := max(size-len(head)-len(tail)-60, 64)
	head = append(head, "4 0 obj\n<< /Length "...)
	head = strconv.AppendInt(head, int64(n), 10)
	head = append(head, " /Filter /FlateDecode >>\nstream\n"...)
	tail = strconv.AppendInt(tail, int64(len(head)+n), 10)
	tail = append(tail, "\n%%EOF\n"...)
	w.Write(head)
	writeFiller(w, r, n)
	w.Write(tail)
	return len(head) + n + len(tail)
}

// writePNG writes a PNG signature, IHDR, one IDAT chunk of filler with a
// correct CRC, and IEND, and returns the decoded size.
func writePNG(w *b64Lines, r *rand.Rand, size int) int {
	head := make([]byte, 0, 64)
	head = append(head, "\x89PNG\r\n\x1a\n"...)
	ihdr := make([]byte, 0, 17)
	ihdr = append(ihdr, "IHDR"...)
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(640+r.IntN(3392)))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(480+r.IntN(2544)))
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, deflate, no interlace
	head = binary.BigEndian.AppendUint32(head, 13)
	head = append(head, ihdr...)
	head = binary.BigEndian.AppendUint32(head, crc32.ChecksumIEEE(ihdr))
	n := max(size-len(head)-8-4-12, 64)
	head = binary.BigEndian.AppendUint32(head, uint32(n))
	head = append(head, "IDAT"...)
	w.Write(head)
	data := writeFiller(w, r, n)
	crc := crc32.Update(crc32.ChecksumIEEE([]byte("IDAT")), crc32.IEEETable, data)
	tail := binary.BigEndian.AppendUint32(nil, crc)
	tail = append(tail, 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82)
	w.Write(tail)
	return len(head) + n + len(tail)
}

// writeCSV writes a bookings export in UTF-8 and returns its size. Unlike the
// binary formats it is real text, row by row.
func writeCSV(w *b64Lines, r *rand.Rand, size int, names []string) int {
	row := make([]byte, 0, 160)
	row = append(row, "booking_id,event_date,guests,package,subtotal,gratuity,total,currency,status,customer\r\n"...)
	total := 0
	packages := [...]string{"Classic", "Deluxe", "Premium", "Kids"}
	statuses := [...]string{"paid", "deposit", "refunded", "pending", "cancelled"}
	for total < size {
		x := r.Uint64()
		guests := 10 + int(x%60)
		sub := int64(guests) * (4500 + int64(x>>8%3000))
		grat := sub * 18 / 100
		row = append(row, "HB-25"...)
		row = appendPadded(row, int(x>>20%1231)+101, 4)
		row = append(row, '-')
		row = appendPadded(row, int(x>>32%10000), 4)
		row = append(row, ",2025-"...)
		row = appendPadded(row, int(x>>40%12)+1, 2)
		row = append(row, '-')
		row = appendPadded(row, int(x>>44%28)+1, 2)
		row = append(row, ',')
		row = strconv.AppendInt(row, int64(guests), 10)
		row = append(row, ',')
		row = append(row, packages[x>>48%4]...)
		row = append(row, ',')
		row = appendCents(row, sub)
		row = append(row, ',')
		row = appendCents(row, grat)
		row = append(row, ',')
		row = appendCents(row, sub+grat)
		row = append(row, ",USD,"...)
		row = append(row, statuses[x>>52%5]...)
		row = append(row, ',')
		row = append(row, csvField(names[int(x>>56)%len(names)])...)
		row = append(row, "\r\n"...)
		w.Write(row)
		total += len(row)
		row = row[:0]
	}
	return total
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

func appendCents(b []byte, cents int64) []byte {
	b = strconv.AppendInt(b, cents/100, 10)
	b = append(b, '.')
	return appendPadded(b, int(cents%100), 2)
}

// csvField quotes a field as RFC 4180 does.
func csvField(s string) string {
	if !strings.ContainsAny(s, ",\"\r\n") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
