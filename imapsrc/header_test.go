package imapsrc

import "testing"

func TestHeaderMessageID(t *testing.T) {
	for header, want := range map[string]string{
		"Message-ID: <abc@x>\r\n\r\n":     "abc@x",
		"Message-Id:  <abc@x>  \r\n":      "abc@x",
		"Subject: none\r\n\r\n":           "",
		"Message-ID: <abc@x\r\n\r\n":      "abc@x",
		"Message-ID: <abc@x>\r\r\n\r\r\n": "abc@x", // Courier, Maildir stored with CRLF (issue 14)
	} {
		if got := headerMessageID([]byte(header)); got != want {
			t.Errorf("headerMessageID(%q) = %q, want %q", header, got, want)
		}
	}
}
