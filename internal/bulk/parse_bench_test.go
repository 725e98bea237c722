package bulk

import (
	"bytes"
	"fmt"
	"testing"
)

// BenchmarkParse measures checking an import file of 10,000 rows, all of which must be
// read before anything is created.
func BenchmarkParse(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("name,email,phone,department,position,workNumber,location,role\n")
	for i := range 10000 {
		fmt.Fprintf(&buf, "Person %d,p%d@acme.example,,Sales,Rep,,Berlin,Member\n", i, i)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rows, problems, err := parse(bytes.NewReader(data))
		if err != nil || len(problems) > 0 || len(rows) != 10000 {
			b.Fatalf("rows %d, problems %v, err %v", len(rows), problems, err)
		}
	}
}
