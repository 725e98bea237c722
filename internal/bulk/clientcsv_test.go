package bulk

import (
	"bytes"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// These tests read client files on their own; ImportClients against the API server is
// tested in the suite.

func readFixture(t *testing.T, name string) *clientFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "clients", name))
	if err != nil {
		t.Fatal(err)
	}
	f, err := readClients(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(f.problems) > 0 {
		t.Fatalf("%s: problems %v", name, f.problems)
	}
	return f
}

// TestForeignFormats reads files as Microsoft Entra, Okta and Google Workspace write them,
// and a Roster template saved by a spreadsheet in a European locale.
func TestForeignFormats(t *testing.T) {
	for _, tt := range []struct {
		file   string
		format Format
		want   []clientRow
	}{
		{"entra.csv", FormatEntra, []clientRow{
			// The bulk-invite file has no name column: people are named by their address.
			{line: 3, name: "erin@partner.example", email: "erin@partner.example"},
			{line: 4, name: "frank@partner.example", email: "frank@partner.example"},
		}},
		{"entra-named.csv", FormatEntra, []clientRow{
			{line: 3, name: "Erin Hannon", email: "erin@partner.example"},
			{line: 4, name: "Frank Castle", email: "frank@partner.example"},
		}},
		{"okta.csv", FormatOkta, []clientRow{
			{line: 2, name: "Erin Hannon", email: "erin@partner.example", phone: "+4915112345678", title: "Procurement", company: "Partner GmbH"},
			{line: 3, name: "Frank C.", email: "frank@partner.example", phone: "+49301234567", company: "Partner GmbH"},
		}},
		{"google.csv", FormatGoogle, []clientRow{
			{line: 2, name: "Erin Hannon", email: "erin@partner.example", phone: "+4915112345678", title: "Procurement"},
			{line: 3, name: "Frank Castle", email: "frank@partner.example", phone: "+49301234567"},
		}},
		{"excel-semicolon.csv", FormatRoster, []clientRow{
			{line: 2, name: "Erin Hannon", email: "erin@partner.example", phone: "+4915112345678", title: "Procurement; Purchasing"},
			{line: 3, name: "Frank Castle", email: "frank@partner.example"},
		}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			f := readFixture(t, tt.file)
			if f.format != tt.format {
				t.Errorf("format %q, want %q", f.format, tt.format)
			}
			if !reflect.DeepEqual(f.rows, tt.want) {
				t.Errorf("rows\n%+v\nwant\n%+v", f.rows, tt.want)
			}
		})
	}
}

func TestClientTemplateReadsBack(t *testing.T) {
	f, err := readClients(bytes.NewReader(ClientTemplate()))
	if err != nil || len(f.problems) > 0 {
		t.Fatalf("template: %v %v", err, f.problems)
	}
	want := []clientRow{{line: 2, name: "Erin Hannon", email: "erin@partner.example", phone: "+4915112345678",
		title: "Procurement", team: []string{"dana@acme.example"}}}
	if !reflect.DeepEqual(f.rows, want) {
		t.Errorf("rows %+v", f.rows)
	}
}

func TestClientRowProblems(t *testing.T) {
	file := "firstName,lastName,email,phone,role,team\n" + // 1
		"Ok,One,ok@partner.example,,,a@acme.example b@acme.example\n" + // 2
		",,noname@partner.example,,,\n" + // 3
		"Bad,Mail,not-mail,,,\n" + // 4
		"Bad,Phone,p@partner.example,0151 1234,,\n" + // 5
		"Dup,One,OK@partner.example,,,\n" + // 6
		"Bad,Team,t@partner.example,,,dana\n" + // 7
		"No,Contact,,,,\n" + // 8
		"Too,few\n" // 9
	f, err := readClients(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range f.problems {
		got = append(got, p.String())
	}
	want := []string{
		"line 3: name: needs a name: fill in firstName or lastName",
		`line 4: email: "not-mail" is not an email address like name@example.com`,
		`line 5: phone: "0151 1234" is not a phone number in international form like +4915112345678`,
		"line 6: email: OK@partner.example is already on line 2",
		`line 7: team: "dana" is not an email address; the team column takes the email of the member who serves the client`,
		"line 8: needs an email or a phone",
		"line 9: has 2 fields, the header has 6",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(f.rows) != 1 || !reflect.DeepEqual(f.rows[0].team, []string{"a@acme.example", "b@acme.example"}) {
		t.Errorf("rows %+v", f.rows)
	}
}

func TestClientHeaderProblems(t *testing.T) {
	for _, tt := range []struct{ file, want string }{
		{"", "line 1: the file is empty"},
		{"firstName,lastName,mail\n", `line 1: unknown column "mail"`},
		{"firstName,lastName,mail\n", `line 1: missing column "email"`},
		{"email,email,name\n", `line 1: column "email" appears twice`},
		{"version:v1.0\n", "line 2: the file has a version row but no headings"},
		{"version:v1.0\nRedirection url [inviteRedirectURL] Required\n", `missing column "inviteeemail" (a Microsoft Entra bulk invite file)`},
	} {
		_, err := readClients(strings.NewReader(tt.file))
		var verr *ValidationError
		if !errors.As(err, &verr) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.file, err, tt.want)
		}
	}
}

// TestSafeCellRoundTrip: what an export defuses, an import restores.
func TestSafeCellRoundTrip(t *testing.T) {
	for _, s := range []string{"", "Erin", "=HYPERLINK(\"x\")", "'=1+1", "''=1", "+4915112345678", "-", "@x", "'quoted'"} {
		if got := unsafeCell(safeCell(s)); got != s {
			t.Errorf("%q came back as %q via %q", s, got, safeCell(s))
		}
		if q := safeCell(s); q != "" && strings.ContainsRune("=+-@", rune(q[0])) && !plainNumber.MatchString(q) {
			t.Errorf("%q exports as %q, which a spreadsheet runs", s, q)
		}
	}
}

// FuzzReadClients: no file makes the reader fail other than with a ValidationError, every
// row it accepts is one the API server would take, and every accepted row exports and
// reads back unchanged.
func FuzzReadClients(f *testing.F) {
	for _, name := range []string{"entra.csv", "entra-named.csv", "okta.csv", "google.csv", "excel-semicolon.csv"} {
		b, err := os.ReadFile(filepath.Join("testdata", "clients", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(ClientTemplate())
	f.Add([]byte("name,email\n=cmd,a@b.example\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := readClients(bytes.NewReader(data))
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		last := 0
		for _, r := range file.rows {
			if r.line <= last {
				t.Fatalf("line %d after %d", r.line, last)
			}
			last = r.line
			if r.name == "" || utf8.RuneCountInString(r.name) > 128 || !utf8.ValidString(r.name) {
				t.Fatalf("accepted name %q", r.name)
			}
			if (r.email != "" && !validEmail(r.email)) || (r.phone != "" && !e164.MatchString(r.phone)) || r.key() == "" {
				t.Fatalf("accepted email %q phone %q", r.email, r.phone)
			}
		}
		if len(file.rows) == 0 {
			return
		}
		// Back through the export's writer and the reader.
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write(clientExportColumns)
		for _, r := range file.rows {
			rec := []string{r.name, r.email, r.phone, r.title, r.company, strings.Join(r.team, " "), "", "", "", ""}
			for i := range rec {
				rec[i] = safeCell(rec[i])
			}
			_ = w.Write(rec)
		}
		w.Flush()
		again, err := readClients(&buf)
		if err != nil || len(again.problems) > 0 {
			t.Fatalf("export of %+v does not read back: %v %v\n%s", file.rows, err, again.problems, buf.String())
		}
		if len(again.rows) != len(file.rows) {
			t.Fatalf("%d rows read back, want %d", len(again.rows), len(file.rows))
		}
		for i, r := range again.rows {
			want := file.rows[i]
			want.line = r.line
			if !reflect.DeepEqual(r, want) {
				t.Fatalf("row %+v read back as %+v", want, r)
			}
		}
	})
}

// FuzzParse: the member import reader fails only with a ValidationError and accepts only
// rows with a valid address.
func FuzzParse(f *testing.F) {
	f.Add(Template())
	f.Add([]byte("name,email,phone,department,position,workNumber,location,role\nA,a@b.example,,,,,,admin\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, problems, err := parse(bytes.NewReader(data))
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		_ = problems
		for _, r := range rows {
			if (r.email != "" && !validEmail(r.email)) || (r.phone != "" && !e164.MatchString(r.phone)) || r.invitee() == "" {
				t.Fatalf("accepted email %q phone %q", r.email, r.phone)
			}
		}
	})
}
