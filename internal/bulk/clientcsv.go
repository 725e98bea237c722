package bulk

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// clientColumns are the client import template's columns in the template's order. role is
// the person's job title (spec.title); team is the email of the internal member who serves
// them, or several, the first of whom leads.
var clientColumns = []string{"firstName", "lastName", "email", "phone", "role", "team"}

// clientExportColumns are the columns of an export of external users. The first six are
// what an import reads back (name instead of firstName and lastName, since an external user
// has one display name); the others describe the object and an import ignores them.
var clientExportColumns = []string{"name", "email", "phone", "role", "company", "team", "status", "signedUp", "lastLogin", "id"}

// exampleClient is the client template's example: a row that imports as it is, but for
// the team, which must name a member of the admin's own organization.
var exampleClient = []string{"Erin", "Hannon", "erin@partner.example", "+4915112345678", "Procurement", "dana@acme.example"}

// ClientTemplate is the CSV file admins download, fill in and import with ImportClients:
// the header and one example row.
func ClientTemplate() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(clientColumns)
	_ = w.Write(exampleClient)
	w.Flush()
	return b.Bytes()
}

// Format is a kind of CSV file ImportClients reads; it is told from the header, so admins
// import the files their other tools export without editing them.
type Format string

const (
	// FormatRoster is ClientTemplate's format, and that of an export.
	FormatRoster Format = "Roster"
	// FormatEntra is Microsoft Entra's B2B bulk-invite file: a first row version:v1.0, then
	// headings such as "Email address to invite [inviteeEmail] Required".
	FormatEntra Format = "Microsoft Entra bulk invite"
	// FormatOkta is Okta's user import file: login, firstName, lastName, email and more.
	FormatOkta Format = "Okta"
	// FormatGoogle is Google Workspace's user upload file: First Name [Required], Last Name
	// [Required], Email Address [Required] and more.
	FormatGoogle Format = "Google Workspace"
)

// clientField is a detail of a client row that some column supplies.
type clientField string

const (
	fName, fFirst, fLast, fEmail, fLogin clientField = "name", "firstName", "lastName", "email", "login"
	fPhone, fTitle, fCompany, fTeam      clientField = "phone", "role", "company", "team"
)

// formatSpec says which columns supply which field, by the column's key (see columnKey); a
// field several columns supply takes the first non-empty one, in this order.
type formatSpec struct {
	columns map[clientField][]string
	// ignored are columns known to carry nothing Roster keeps; in Roster's own format any
	// other column is an error, so that a misspelt column is not silently dropped. Foreign
	// formats have many columns Roster has no use for, and ignore them all.
	ignored []string
	strict  bool
	// required are the fields one of whose columns the header must have.
	required [][]clientField
	// nameFromEmail names a person by their address when the format has no name column.
	nameFromEmail bool
}

var formats = map[Format]formatSpec{
	FormatRoster: {
		columns: map[clientField][]string{fName: {"name"}, fFirst: {"firstname"}, fLast: {"lastname"},
			fEmail: {"email"}, fPhone: {"phone"}, fTitle: {"role"}, fCompany: {"company"}, fTeam: {"team"}},
		ignored:  []string{"status", "signedup", "lastlogin", "id"},
		strict:   true,
		required: [][]clientField{{fEmail}, {fName, fFirst, fLast}},
	},
	FormatEntra: {
		columns:       map[clientField][]string{fEmail: {"inviteeemail"}, fName: {"inviteename"}},
		required:      [][]clientField{{fEmail}},
		nameFromEmail: true,
	},
	FormatOkta: {
		columns: map[clientField][]string{fName: {"displayname"}, fFirst: {"firstname"}, fLast: {"lastname"},
			fEmail: {"email"}, fLogin: {"login"}, fPhone: {"mobilephone", "primaryphone"}, fTitle: {"title"},
			fCompany: {"organization"}},
		required: [][]clientField{{fEmail, fLogin}, {fName, fFirst, fLast}},
	},
	FormatGoogle: {
		columns: map[clientField][]string{fFirst: {"firstname"}, fLast: {"lastname"}, fEmail: {"emailaddress"},
			fPhone: {"mobilephone", "workphone", "recoveryphone", "homephone"}, fTitle: {"employeetitle"}},
		required: [][]clientField{{fEmail}, {fFirst, fLast}},
	},
}

// clientRow is one valid row of a client import file.
type clientRow struct {
	line                               int
	name, email, phone, title, company string
	// team are the emails of the members who serve the person, the lead first.
	team []string
}

// key is how results name the person: their email, or their phone.
func (r clientRow) key() string { return firstNonEmpty(r.email, r.phone) }

// clientFile is a client import file read and checked on its own, before it is compared
// with what is in the cluster.
type clientFile struct {
	format Format
	// has tells which fields the file has a column for: an import changes only those.
	has      map[clientField]bool
	rows     []clientRow
	problems []RowError
}

var (
	bracketed   = regexp.MustCompile(`\[[^\]]*\]`)
	entraColumn = regexp.MustCompile(`\[([A-Za-z]+)\]`)
	// teamSeparators split a team cell into addresses: people type a list with whatever
	// their spreadsheet leaves alone.
	teamSeparators = func(r rune) bool { return unicode.IsSpace(r) || r == ',' || r == ';' || r == '|' }
)

// columnKey reduces a heading to what tells columns apart: "First Name [Required]",
// "firstName" and "first_name" are all firstname. Entra's headings are known by the
// property in brackets.
func columnKey(h string, format Format) string {
	if format == FormatEntra {
		if m := entraColumn.FindStringSubmatch(h); m != nil {
			return strings.ToLower(m[1])
		}
	}
	h = bracketed.ReplaceAllString(h, "")
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// detectFormat tells the format from the header's keys.
func detectFormat(header []string) Format {
	keys := map[string]bool{}
	for _, h := range header {
		keys[columnKey(h, FormatRoster)] = true
		if entraColumn.MatchString(h) && strings.EqualFold(columnKey(h, FormatEntra), "inviteeemail") {
			return FormatEntra
		}
	}
	switch {
	case keys["emailaddress"] && keys["firstname"]:
		return FormatGoogle
	case keys["login"]:
		return FormatOkta
	}
	return FormatRoster
}

// newCSVReader reads a CSV file as spreadsheets save it: with or without a UTF-8 byte order
// mark, with CRLF or LF line ends, and separated by commas or, as in several European
// locales, semicolons (or tabs), whichever the first line has most of.
func newCSVReader(r io.Reader) *csv.Reader {
	br := bufio.NewReaderSize(skipBOM(r), 64*1024)
	head, _ := br.Peek(64 * 1024)
	cr := csv.NewReader(br)
	cr.Comma = sniffSeparator(head)
	// Rows with too few or too many fields are reported like any other bad row rather than
	// stopping the read.
	cr.FieldsPerRecord = -1
	return cr
}

// sniffSeparator counts the candidate separators outside quotes on the first line that has
// any (Entra's version:v1.0 line has none).
func sniffSeparator(head []byte) rune {
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		counts := map[rune]int{}
		quoted := false
		for _, c := range string(line) {
			switch {
			case c == '"':
				quoted = !quoted
			case !quoted && (c == ',' || c == ';' || c == '\t'):
				counts[c]++
			}
		}
		best, n := ',', 0
		for _, c := range []rune{',', ';', '\t'} {
			if counts[c] > n {
				best, n = c, counts[c]
			}
		}
		if n > 0 {
			return best
		}
	}
	return ','
}

// readClients reads and checks a client import file on its own. Its error is for a file
// that cannot be read as an import at all (empty, broken CSV, a header without the needed
// columns); bad rows are in the file's problems.
func readClients(r io.Reader) (*clientFile, error) {
	cr := newCSVReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &ValidationError{Problems: []RowError{{Line: 1,
			Message: "the file is empty; it needs the header " + strings.Join(clientColumns, ",")}}}
	}
	if err != nil {
		return nil, csvError(err, nil)
	}
	headerLine := 1
	format := detectFormat(header)
	if len(header) > 0 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(header[0])), "version:") {
		// Entra's first row is the template's version; its headings follow.
		format = FormatEntra
		if header, err = cr.Read(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &ValidationError{Problems: []RowError{{Line: 2, Message: "the file has a version row but no headings"}}}
			}
			return nil, csvError(err, nil)
		}
		headerLine, _ = cr.FieldPos(0)
	}
	spec := formats[format]
	index, problems := readClientHeader(header, format, spec, headerLine)
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	f := &clientFile{format: format, has: map[clientField]bool{}}
	for field := range index {
		f.has[field] = true
	}
	seenEmail, seenPhone := map[string]int{}, map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, csvError(err, f.problems)
		}
		line, _ := cr.FieldPos(0)
		if blank(rec) {
			continue
		}
		if len(rec) != len(header) {
			f.problems = append(f.problems, RowError{Line: line,
				Message: fmt.Sprintf("has %d fields, the header has %d", len(rec), len(header))})
			continue
		}
		get := func(field clientField) string {
			for _, i := range index[field] {
				if v := unsafeCell(strings.TrimSpace(rec[i])); v != "" {
					return v
				}
			}
			return ""
		}
		row, rowProblems := validateClient(line, get, spec)
		// A client is known by their email, or by their phone when they have none.
		if row.email != "" {
			rowProblems = seenOnce(seenEmail, strings.ToLower(row.email), row.email, "email", line, rowProblems)
		} else if row.phone != "" {
			rowProblems = seenOnce(seenPhone, row.phone, row.phone, "phone", line, rowProblems)
		}
		if len(rowProblems) > 0 {
			f.problems = append(f.problems, rowProblems...)
			continue
		}
		f.rows = append(f.rows, row)
	}
	return f, nil
}

// readClientHeader maps each field to the indexes of the columns that supply it.
func readClientHeader(header []string, format Format, spec formatSpec, line int) (map[clientField][]int, []RowError) {
	byKey := map[string]clientField{}
	for field, keys := range spec.columns {
		for _, k := range keys {
			byKey[k] = field
		}
	}
	ignored := map[string]bool{}
	for _, k := range spec.ignored {
		ignored[k] = true
	}
	index := map[clientField][]int{}
	seen := map[string]bool{}
	var problems []RowError
	for i, h := range header {
		key := columnKey(h, format)
		field, known := byKey[key]
		switch {
		case known && seen[key]:
			problems = append(problems, RowError{Line: line, Message: fmt.Sprintf("column %q appears twice", strings.TrimSpace(h))})
		case known:
			seen[key] = true
			index[field] = append(index[field], i)
		case spec.strict && !ignored[key]:
			problems = append(problems, RowError{Line: line, Message: fmt.Sprintf("unknown column %q; the columns are %s (and name, company)",
				strings.TrimSpace(h), strings.Join(clientColumns, ","))})
		}
	}
	// A field several columns supply takes them in the format's order, not the file's.
	for field, keys := range spec.columns {
		order := map[string]int{}
		for i, k := range keys {
			order[k] = i
		}
		idx := index[field]
		for a := 1; a < len(idx); a++ {
			for b := a; b > 0 && order[columnKey(header[idx[b]], format)] < order[columnKey(header[idx[b-1]], format)]; b-- {
				idx[b], idx[b-1] = idx[b-1], idx[b]
			}
		}
	}
	for _, need := range spec.required {
		found := false
		for _, field := range need {
			found = found || len(index[field]) > 0
		}
		if !found {
			var names []string
			for _, field := range need {
				names = append(names, spec.columns[field]...)
			}
			problems = append(problems, RowError{Line: line, Message: fmt.Sprintf("missing column %s (a %s file)",
				strings.Join(quoteAll(names), " or "), format)})
		}
	}
	return index, problems
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// clientLimits mirror the ExternalUser schema, so that what the API server would refuse
// is reported with its line before anything is created.
var clientLimits = map[string]int{"name": 128, "email": 254, "role": 128, "company": 128}

// validateClient checks one row against what an ExternalUser accepts, reporting every
// problem at once.
func validateClient(line int, get func(clientField) string, spec formatSpec) (clientRow, []RowError) {
	row := clientRow{line: line, email: get(fEmail), title: get(fTitle), company: get(fCompany)}
	var problems []RowError
	bad := func(col, format string, args ...any) {
		problems = append(problems, RowError{Line: line, Column: col, Message: fmt.Sprintf(format, args...)})
	}
	if row.email == "" && validEmail(get(fLogin)) {
		// Okta's login is most often the address itself.
		row.email = get(fLogin)
	}
	row.name = get(fName)
	if row.name == "" {
		row.name = strings.TrimSpace(get(fFirst) + " " + get(fLast))
	}
	if row.name == "" && spec.nameFromEmail {
		row.name = row.email
	}
	if raw := get(fPhone); raw != "" {
		row.phone = normalizePhone(raw)
		if !e164.MatchString(row.phone) {
			bad("phone", "%q is not a phone number in international form like +4915112345678", raw)
		}
	}
	for col, v := range map[string]string{"name": row.name, "email": row.email, "role": row.title, "company": row.company} {
		if n := utf8.RuneCountInString(v); n > clientLimits[col] {
			bad(col, "is %d characters long, at most %d are allowed", n, clientLimits[col])
		}
	}
	switch {
	case row.name == "":
		bad("name", "needs a name: fill in firstName or lastName")
	case !utf8.ValidString(row.name):
		bad("name", "is not UTF-8 text; save the file as UTF-8 CSV")
	}
	switch {
	case row.email == "" && row.phone == "":
		bad("", "needs an email or a phone")
	case row.email != "" && !validEmail(row.email):
		bad("email", "%q is not an email address like name@example.com", row.email)
	}
	for _, t := range strings.FieldsFunc(get(fTeam), teamSeparators) {
		if !validEmail(t) {
			bad("team", "%q is not an email address; the team column takes the email of the member who serves the client", t)
			continue
		}
		if !containsFold(row.team, t) {
			row.team = append(row.team, t)
		}
	}
	// Problems come out in column order, so a message reads the same every time.
	sortProblems(problems)
	return row, problems
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

var columnOrder = map[string]int{"": 0, "name": 1, "email": 2, "phone": 3, "role": 4, "company": 5, "team": 6}

func sortProblems(p []RowError) {
	slices.SortStableFunc(p, func(a, b RowError) int { return columnOrder[a.Column] - columnOrder[b.Column] })
}

// normalizePhone turns the ways people write an international number into E.164: spaces,
// dashes, dots, slashes and brackets go, and a leading 00 becomes +.
func normalizePhone(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case ' ', '-', '.', '/', '(', ')', '\u00a0':
		default:
			b.WriteRune(r)
		}
	}
	p := b.String()
	if strings.HasPrefix(p, "00") {
		p = "+" + p[2:]
	}
	return p
}
