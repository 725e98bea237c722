package bulk

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const header = "name,email,phone,department,position,workNumber,location,role\n"

// problems renders a parse's problems as "line column" for comparison.
func problems(ps []RowError) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%d %s", p.Line, p.Column))
	}
	return out
}

func TestParseRows(t *testing.T) {
	tests := []struct {
		name     string
		rows     string
		problems []string
		valid    []int
	}{
		{"email only", "A,a@acme.example,,,,,,\n", nil, []int{2}},
		{"phone only", "A,,+4915112345678,,,,,\n", nil, []int{2}},
		{"neither email nor phone", "A,,,Sales,,,,\n", []string{"2 "}, nil},
		{"email with a display name", "A,A <a@acme.example>,,,,,,\n", []string{"2 email"}, nil},
		{"email without a dotted domain", "A,a@localhost,,,,,,\n", []string{"2 email"}, nil},
		{"email without an at", "A,acme.example,,,,,,\n", []string{"2 email"}, nil},
		{"phone without plus", "A,,4915112345678,,,,,\n", []string{"2 phone"}, nil},
		{"phone too short", "A,,+12345,,,,,\n", []string{"2 phone"}, nil},
		{"phone with spaces", "A,,+49 151 1234567,,,,,\n", []string{"2 phone"}, nil},
		{"phone starting with zero", "A,,+04915112345678,,,,,\n", []string{"2 phone"}, nil},
		{"every role in any case", "A,a@acme.example,,,,,,member\nB,b@acme.example,,,,,,ADMIN\n" +
			"C,c@acme.example,,,,,,accountadmin\nD,d@acme.example,,,,,,SuperAdmin\n", nil, []int{2, 3, 4, 5}},
		{"unknown role", "A,a@acme.example,,,,,,Owner\n", []string{"2 role"}, nil},
		{"work number with letters", "A,a@acme.example,,,,ext. 12,,\n", []string{"2 workNumber"}, nil},
		{"name too long", strings.Repeat("é", 129) + ",a@acme.example,,,,,,\n", []string{"2 name"}, nil},
		{"name at the limit", strings.Repeat("é", 128) + ",a@acme.example,,,,,,\n", nil, []int{2}},
		{"several problems in one row", "A,nope,123,,,x,,Boss\n", []string{"2 email", "2 phone", "2 workNumber", "2 role"}, nil},
		{"too many fields", "A,a@acme.example,,,,,,,extra\n", []string{"2 "}, nil},
		{"same email twice, ignoring case", "A,a@acme.example,,,,,,\nB,A@ACME.example,,,,,,\n", []string{"3 email"}, []int{2}},
		{"same phone twice", "A,,+4915112345678,,,,,\nB,b@acme.example,+4915112345678,,,,,\n", []string{"3 phone"}, []int{2}},
		{"blank rows are skipped, lines still count", "\n,,,,,,,\nA,a@acme.example,,,,,,\n", nil, []int{4}},
		{"a quoted newline: the row's first line counts", "\"A\nB\",a@acme.example,,,,,,\nC,nope,,,,,,\n", []string{"4 email"}, []int{2}},
		{"spaces around values are trimmed", " A , a@acme.example , , Sales ,,,, admin \n", nil, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, bad, err := parse(strings.NewReader(header + tt.rows))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got, want := problems(bad), append([]string{}, tt.problems...); !slices.Equal(got, want) {
				t.Errorf("problems = %q, want %q (%v)", got, want, bad)
			}
			var valid []int
			for _, r := range rows {
				valid = append(valid, r.line)
			}
			if !slices.Equal(valid, tt.valid) {
				t.Errorf("valid rows on lines %v, want %v", valid, tt.valid)
			}
		})
	}
}

func TestParseKeepsTrimmedValues(t *testing.T) {
	rows, bad, err := parse(strings.NewReader(header + " A , a@acme.example , , Sales ,,,, admin \n"))
	if err != nil || len(bad) > 0 || len(rows) != 1 {
		t.Fatalf("parse: rows %v, problems %v, err %v", rows, bad, err)
	}
	want := importRow{line: 2, name: "A", email: "a@acme.example", department: "Sales", role: "Admin"}
	if rows[0] != want {
		t.Errorf("row = %+v, want %+v", rows[0], want)
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string // messages of the problems, in order
	}{
		{"empty file", "", []string{"the file is empty"}},
		{"unknown and missing column", "name,mail,phone,department,position,workNumber,location,role\n",
			[]string{`unknown column "mail"`, `missing column "email"`}},
		{"repeated column", "name,email,EMAIL,phone,department,position,workNumber,location,role\n",
			[]string{`column "email" appears twice`}},
		{"broken quoting", header + "A,a@acme.example,,,,,,\nB,\"b@acme.example,,,,,,\n",
			[]string{"broken CSV"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parse(strings.NewReader(tt.file))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if len(verr.Problems) != len(tt.want) {
				t.Fatalf("problems = %v, want %d", verr.Problems, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(verr.Problems[i].Message, w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, verr.Problems[i].Message, w)
				}
			}
		})
	}
}

func TestParseAcceptsAnyColumnOrderAndABOM(t *testing.T) {
	file := "\ufeffROLE,Location,workNumber,Position,Department,Phone,Email,Name\n" +
		"Admin,Berlin,+49 30 1,SRE,Engineering,,bob@acme.example,Bob\n"
	rows, bad, err := parse(strings.NewReader(file))
	if err != nil || len(bad) > 0 {
		t.Fatalf("parse: problems %v, err %v", bad, err)
	}
	want := importRow{line: 2, name: "Bob", email: "bob@acme.example", department: "Engineering", position: "SRE",
		number: "+49 30 1", location: "Berlin", role: "Admin"}
	if len(rows) != 1 || rows[0] != want {
		t.Errorf("rows = %+v, want %+v", rows, want)
	}
}

func TestSafeCell(t *testing.T) {
	tests := map[string]string{
		"":                              "",
		"Alice":                         "Alice",
		"=1+1":                          "'=1+1",
		`=HYPERLINK("http://x","y")`:    `'=HYPERLINK("http://x","y")`,
		"@SUM(A1)":                      "'@SUM(A1)",
		"+cmd|' /C calc'!A0":            "'+cmd|' /C calc'!A0",
		"-2+3+cmd|' /C calc'!A0":        "'-2+3+cmd|' /C calc'!A0",
		"\t=1":                          "'\t=1",
		"\r=1":                          "'\r=1",
		"-Sales":                        "'-Sales",
		"+4915112345678":                "+4915112345678",
		"+49 (30) 1234-100":             "+49 (30) 1234-100",
		"-5":                            "-5",
		"a=b":                           "a=b",
		"+49 30 1234 =HYPERLINK(\"x\")": "'+49 30 1234 =HYPERLINK(\"x\")",
	}
	for in, want := range tests {
		if got := safeCell(in); got != want {
			t.Errorf("safeCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImportedInvitationName(t *testing.T) {
	dns1123 := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	a := ImportedInvitationName("acme", "Bob@Acme.example", "")
	if !dns1123.MatchString(a) || len(a) > 63 {
		t.Errorf("%q is not a valid object name", a)
	}
	if b := ImportedInvitationName("acme", "bob@acme.example", "+4915112345678"); b != a {
		t.Errorf("the name changed with the email's case or the phone: %q, %q", a, b)
	}
	distinct := []string{a,
		ImportedInvitationName("other", "bob@acme.example", ""),
		ImportedInvitationName("acme", "rob@acme.example", ""),
		ImportedInvitationName("acme", "", "+4915112345678"),
	}
	slices.Sort(distinct)
	if len(slices.Compact(distinct)) != 4 {
		t.Errorf("names collide: %v", distinct)
	}
}
