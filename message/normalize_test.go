package message

import "testing"

func TestNormalizeMessageID(t *testing.T) {
	for in, want := range map[string]string{
		" <abc@x> ":  "abc@x",
		"abc@x":      "abc@x",
		"<<a@x>>":    "<a@x>",
		"<>":         "",
		"":           "",
		"<a\xffb@x>": "a\ufffdb@x",
		"<abc@x":     "abc@x",
		"abc@x> ":    "abc@x",
	} {
		if got := NormalizeMessageID(in); got != want {
			t.Errorf("NormalizeMessageID(%q) = %q, want %q", in, got, want)
		}
	}
}
