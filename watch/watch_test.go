package watch

import (
	"slices"
	"testing"
)

func TestMissing(t *testing.T) {
	for _, c := range []struct {
		want, have, gone []uint32
	}{
		{nil, nil, nil},
		{[]uint32{1, 2, 3}, []uint32{1, 2, 3}, nil},
		{[]uint32{1, 2, 3}, nil, []uint32{1, 2, 3}},
		{[]uint32{1, 2, 3, 7}, []uint32{2, 5, 7, 9}, []uint32{1, 3}},
		{[]uint32{4}, []uint32{1, 2, 3}, []uint32{4}},
	} {
		if got := missing(c.want, c.have); !slices.Equal(got, c.gone) {
			t.Errorf("missing(%v, %v) = %v, want %v", c.want, c.have, got, c.gone)
		}
	}
}
