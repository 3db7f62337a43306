// Command bundle packs rendered addon manifests into the ConfigMaps of one kaas addon bundle
// (see docs/addons.md): one index ConfigMap named after the bundle (key bundle.yaml) and, per
// addon, one or more ConfigMaps `<bundle>-<addon>[-<n>]` with the key manifest.yaml. Every
// ConfigMap carries the label scs.community/addon-bundle=<bundle>.
//
// It checks what kaas will check when it applies the bundle: every document of every manifest is
// a YAML mapping with apiVersion, kind and metadata.name (empty documents are dropped). Documents
// are kept byte for byte; a manifest is split between documents when it would make a ConfigMap
// larger than -limit, and a single document larger than that is an error.
//
// Addons are read from stdin, one a line, in apply order within their stage:
//
//	NAME STAGE VERSION IMPLEMENTATION FILE[,FILE…]     (IMPLEMENTATION "-": any)
//
// Writes DIR/NN-<configMap>.yaml (the manifests' ConfigMaps, then the index last, so that a
// directory apply publishes the index after what it references) and prints one line per
// ConfigMap on stdout: name, size (keys and values plus 4 KiB for metadata: what counts against
// -limit), bytes of the YAML file (values indented), documents.
//
// With -strip-descriptions-over BYTES it is a filter instead: it copies the YAML stream on stdin
// to stdout, and a CustomResourceDefinition document larger than BYTES loses the `description`
// of every schema node of its versions' openAPIV3Schema (what `controller-gen crd:maxDescLen=0`
// generates; `kubectl explain` then shows no field docs). The schema is otherwise unchanged;
// every other document is copied byte for byte. It prints what it stripped on stderr.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

const (
	label    = "scs.community/addon-bundle"
	indexKey = "bundle.yaml"
	dataKey  = "manifest.yaml"
)

type addon struct {
	Name           string   `yaml:"name"`
	Stage          string   `yaml:"stage"`
	Version        quoted   `yaml:"version"`
	Implementation string   `yaml:"implementation,omitempty"`
	Manifests      []string `yaml:"manifests"`
}

// quoted is always written double-quoted, so that a version never reads back as a number.
type quoted string

func (q quoted) MarshalYAML() (any, error) {
	return &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: string(q)}, nil
}

type index struct {
	Name   string  `yaml:"name"`
	Addons []addon `yaml:"addons"`
}

var separator = regexp.MustCompile(`^---([ \t].*)?$`)

// documents splits a manifest stream at its `---` lines. Kubernetes manifests never hold a
// column-0 `---` inside a value (block scalars are indented), so this is the stream's own split.
func documents(text string) []string {
	var docs []string
	var cur strings.Builder
	flush := func() {
		docs = append(docs, cur.String())
		cur.Reset()
	}
	for _, line := range strings.SplitAfter(text, "\n") {
		if separator.MatchString(strings.TrimRight(line, "\r\n")) {
			flush()
			continue
		}
		if strings.TrimRight(line, "\r\n") == "..." {
			continue
		}
		cur.WriteString(line)
	}
	flush()
	return docs
}

// check parses one document; it returns "" for an empty one, else "kind/name".
func check(doc string) (string, error) {
	var v any
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		return "", fmt.Errorf("not YAML: %w", err)
	}
	if v == nil {
		return "", nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("not a mapping")
	}
	str := func(x any) string { s, _ := x.(string); return s }
	meta, _ := m["metadata"].(map[string]any)
	apiVersion, kind, name := str(m["apiVersion"]), str(m["kind"]), str(meta["name"])
	if apiVersion == "" || kind == "" || name == "" {
		return "", fmt.Errorf("apiVersion, kind and metadata.name are required (have %q, %q, %q)", apiVersion, kind, name)
	}
	return kind + "/" + name, nil
}

// kebab turns an addon name into a DNS label part: gatewayAPI -> gateway-api.
func kebab(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i, c := range r {
		if unicode.IsUpper(c) {
			prevLower := i > 0 && (unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1]))
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1]) && i > 0 && unicode.IsUpper(r[i-1])
			if prevLower || nextLower {
				b.WriteByte('-')
			}
			b.WriteRune(unicode.ToLower(c))
		} else {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func configMap(bundle, namespace, name string, data map[string]string) ([]byte, error) {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	lit := func(s string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Value: s, Style: yaml.LiteralStyle}
	}
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	meta := []*yaml.Node{str("name"), str(name)}
	if namespace != "" {
		meta = append(meta, str("namespace"), str(namespace))
	}
	meta = append(meta, str("labels"), mapping(str(label), str(bundle)))
	var d []*yaml.Node
	for _, k := range []string{indexKey, dataKey} {
		if v, ok := data[k]; ok {
			d = append(d, str(k), lit(v))
		}
	}
	doc := mapping(
		str("apiVersion"), str("v1"),
		str("kind"), str("ConfigMap"),
		str("metadata"), mapping(meta...),
		str("data"), mapping(d...),
	)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	// Round trip: the data must come back byte for byte.
	var back struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(buf.Bytes(), &back); err != nil {
		return nil, fmt.Errorf("%s: does not parse back: %w", name, err)
	}
	for k, v := range data {
		if back.Data[k] != v {
			return nil, fmt.Errorf("%s: key %s does not round-trip", name, k)
		}
	}
	return buf.Bytes(), nil
}

func main() {
	bundle := flag.String("bundle", "", "bundle name (name of the index ConfigMap)")
	namespace := flag.String("namespace", "", "namespace of the ConfigMaps (the provider namespace)")
	out := flag.String("out", "", "output directory")
	limit := flag.Int("limit", 900*1024, "largest ConfigMap in bytes: its keys and values and 4 KiB for metadata")
	stripOver := flag.Int("strip-descriptions-over", 0, "filter mode: strip schema descriptions from CRDs larger than this many bytes")
	flag.Parse()
	if *stripOver > 0 {
		if err := stripDescriptions(os.Stdin, os.Stdout, *stripOver); err != nil {
			fmt.Fprintln(os.Stderr, "bundle:", err)
			os.Exit(1)
		}
		return
	}
	if *bundle == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: bundle -bundle NAME [-namespace NS] -out DIR [-limit BYTES] <addons")
		os.Exit(2)
	}
	if err := run(*bundle, *namespace, *out, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(bundle, namespace, out string, limit int) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// Kubernetes limits a ConfigMap's keys and values to 1 MiB together, and etcd the whole
	// object to 1.5 MiB; count the data and a generous allowance for the metadata.
	const overhead = 4096
	idx := index{Name: bundle}
	type file struct {
		name string
		body []byte
		size int // what counts against the limit: keys and values, plus overhead for metadata
		docs int
	}
	var files []file
	seen := map[string]bool{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 5 {
			return fmt.Errorf("addon line %q: want NAME STAGE VERSION IMPLEMENTATION FILE", sc.Text())
		}
		a := addon{Name: f[0], Stage: f[1], Version: quoted(f[2])}
		if a.Stage != "base" && a.Stage != "extension" {
			return fmt.Errorf("addon %s: stage must be base or extension", a.Name)
		}
		if f[3] != "-" {
			a.Implementation = f[3]
		}
		// FILE may name several files, comma-separated: their documents in order.
		var raw []byte
		for _, path := range strings.Split(f[4], ",") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			raw = append(append(raw, b...), "\n---\n"...)
		}
		// Pack the documents into parts of at most limit-overhead bytes.
		var parts []string
		var partDocs []int
		var cur strings.Builder
		n := 0
		for i, doc := range documents(string(raw)) {
			what, err := check(doc)
			if err != nil {
				return fmt.Errorf("addon %s: %s, document %d: %w", a.Name, f[4], i, err)
			}
			if what == "" {
				continue
			}
			if !strings.HasSuffix(doc, "\n") {
				doc += "\n"
			}
			piece := doc
			if cur.Len() > 0 {
				piece = "---\n" + doc
			}
			if len(doc) > limit-overhead {
				return fmt.Errorf("addon %s: %s (%d bytes) alone exceeds the ConfigMap limit of %d bytes", a.Name, what, len(doc), limit)
			}
			if cur.Len()+len(piece) > limit-overhead {
				parts, partDocs = append(parts, cur.String()), append(partDocs, n)
				cur.Reset()
				n = 0
				piece = doc
			}
			cur.WriteString(piece)
			n++
		}
		if n == 0 {
			return fmt.Errorf("addon %s: %s has no objects", a.Name, f[4])
		}
		parts, partDocs = append(parts, cur.String()), append(partDocs, n)
		for p, text := range parts {
			cm := bundle + "-" + kebab(a.Name)
			if len(parts) > 1 {
				cm = fmt.Sprintf("%s-%d", cm, p+1)
			}
			if seen[cm] {
				return fmt.Errorf("ConfigMap name %s used twice", cm)
			}
			seen[cm] = true
			body, err := configMap(bundle, namespace, cm, map[string]string{dataKey: text})
			if err != nil {
				return err
			}
			size := len(dataKey) + len(text) + overhead
			if size > limit {
				return fmt.Errorf("%s: %d bytes exceeds the limit of %d", cm, size, limit)
			}
			files = append(files, file{cm, body, size, partDocs[p]})
			a.Manifests = append(a.Manifests, cm+"/"+dataKey)
		}
		idx.Addons = append(idx.Addons, a)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(idx.Addons) == 0 {
		return fmt.Errorf("no addons")
	}
	var ibuf bytes.Buffer
	ienc := yaml.NewEncoder(&ibuf)
	ienc.SetIndent(2)
	if err := ienc.Encode(idx); err != nil {
		return err
	}
	if err := ienc.Close(); err != nil {
		return err
	}
	ib := ibuf.Bytes()
	body, err := configMap(bundle, namespace, bundle, map[string]string{indexKey: string(ib)})
	if err != nil {
		return err
	}
	files = append(files, file{bundle, body, len(indexKey) + len(ib) + overhead, 0})
	for i, f := range files {
		num := fmt.Sprintf("%02d", i+1)
		if i == len(files)-1 {
			num = "99"
		}
		if err := os.WriteFile(filepath.Join(out, num+"-"+f.name+".yaml"), f.body, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s %d %d %d\n", f.name, f.size, len(f.body), f.docs)
	}
	return nil
}

// stripDescriptions is the -strip-descriptions-over filter.
func stripDescriptions(in *os.File, out *os.File, over int) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var b strings.Builder
	n := 0
	for i, doc := range documents(string(raw)) {
		what, err := check(doc)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if what == "" {
			continue
		}
		if len(doc) > over && strings.HasPrefix(what, "CustomResourceDefinition/") {
			stripped, err := stripCRD(doc)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			fmt.Fprintf(os.Stderr, "%s: schema descriptions stripped, %d -> %d bytes\n", what, len(doc), len(stripped))
			doc = stripped
		}
		if !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if n > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(doc)
		n++
	}
	_, err = io.WriteString(out, b.String())
	return err
}

func stripCRD(doc string) (string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return "", err
	}
	get := func(m *yaml.Node, key string) *yaml.Node {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	versions := get(get(root.Content[0], "spec"), "versions")
	if versions == nil || versions.Kind != yaml.SequenceNode {
		return "", fmt.Errorf("no spec.versions")
	}
	for _, v := range versions.Content {
		if s := get(get(v, "schema"), "openAPIV3Schema"); s != nil {
			stripSchema(s)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// stripSchema removes `description` from a JSON schema node and the schemas nested in it; keys of
// `properties` and the like are property names, not schema keywords, and stay.
func stripSchema(s *yaml.Node) {
	if s == nil || s.Kind != yaml.MappingNode {
		return
	}
	kept := s.Content[:0]
	for i := 0; i+1 < len(s.Content); i += 2 {
		k, v := s.Content[i], s.Content[i+1]
		switch k.Value {
		case "description":
			continue
		case "properties", "patternProperties", "definitions", "dependencies":
			if v.Kind == yaml.MappingNode {
				for j := 1; j < len(v.Content); j += 2 {
					stripSchema(v.Content[j])
				}
			}
		case "items", "additionalProperties", "not", "additionalItems":
			if v.Kind == yaml.SequenceNode {
				for _, x := range v.Content {
					stripSchema(x)
				}
			} else {
				stripSchema(v)
			}
		case "allOf", "anyOf", "oneOf":
			for _, x := range v.Content {
				stripSchema(x)
			}
		}
		kept = append(kept, k, v)
	}
	s.Content = kept
}
