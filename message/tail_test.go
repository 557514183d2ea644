package message

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// encodeLines base64-encodes data in lines of width digits ended by eol.
func encodeLines(data []byte, width int, eol string, final bool) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	for len(enc) > 0 {
		n := min(width, len(enc))
		b.WriteString(enc[:n])
		enc = enc[n:]
		if len(enc) > 0 || final {
			b.WriteString(eol)
		}
	}
	return b.Bytes()
}

func TestBase64SizeAgreesWithParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, width := range []int{76, 72, 64, 60} {
		for _, eol := range []string{"\r\n", "\n"} {
			for _, final := range []bool{true, false} {
				for _, n := range []int{0, 1, 2, 3, 56, 57, 58, 100, 1000, 4095, 4096, 4097, 65536, 100001} {
					data := make([]byte, n)
					for i := range data {
						data[i] = byte(r.Uint32())
					}
					part := encodeLines(data, width, eol, final)
					for _, tailLen := range []int{256, 512, len(part)} {
						tail := part[max(0, len(part)-tailLen):]
						got, ok := Base64Size(int64(len(part)), tail)
						whole := len(tail) == len(part)
						if !ok {
							// A tail too short to hold two whole lines may
							// refuse; a whole part never may.
							if whole || len(tail) >= 3*(width+len(eol)) {
								t.Errorf("width %d eol %q final %v n %d tail %d: not ok", width, eol, final, n, len(tail))
							}
							continue
						}
						if got != int64(n) {
							t.Errorf("width %d eol %q final %v n %d tail %d: size %d", width, eol, final, n, len(tail), got)
						}
						p := &parser{}
						if want := p.decodedSize(&entity{header: map[string][]string{"Content-Transfer-Encoding": {"base64"}}, body: part}); got != want {
							t.Errorf("n %d: Base64Size %d, Parse %d", n, got, want)
						}
					}
				}
			}
		}
	}
}

func TestBase64SizeRefusesWhatItCannotProve(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	part := encodeLines(data, 76, "\r\n", true)
	tail := part[len(part)-400:]
	cases := map[string]struct {
		octets int64
		tail   []byte
	}{
		"size off by one":          {int64(len(part)) + 1, tail},
		"tail longer than part":    {10, tail},
		"junk in a line":           {int64(len(part)), bytes.Replace(tail, []byte("\r\n"), []byte("!\r\n"), 2)},
		"lines of unequal lengths": {int64(len(part)) - 1, append(append([]byte{}, tail[:200]...), tail[201:]...)},
		"one line only":            {int64(len(part)), []byte("QUJD\r\n")},
		"not base64":               {5000, bytes.Repeat([]byte("hello world\r\n"), 30)},
	}
	for name, c := range cases {
		if size, ok := Base64Size(c.octets, c.tail); ok {
			t.Errorf("%s: ok with size %d", name, size)
		}
	}
}
