package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/yaml"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// runValidate validates every resource in the files with kubeconform, strictly (unknown fields
// fail) and offline: Kubernetes kinds against the schemas in -schemas (the layout of the
// kubernetes-validate package, `vX.Y.Z-local-strict/<kind>-<group>-<version>.json`), custom
// resources against the CRDs in each -crds folder. A resource without a schema fails.
func runValidate(args []string) error {
	flags := newFlags("validate")
	version := flags.String("kubernetes-version", "1.34.0", "Kubernetes version of the schemas")
	schemas := flags.String("schemas", "", "folder of Kubernetes JSON schemas (required)")
	var crdFolders stringList
	flags.Var(&crdFolders, "crds", "folder of CustomResourceDefinition YAML files (repeatable)")
	_ = flags.Parse(args)
	if *schemas == "" || flags.NArg() == 0 {
		return fmt.Errorf("validate needs -schemas and at least one file")
	}
	work, err := os.MkdirTemp("", "configcheck-schemas-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	kubernetes, err := copyKubernetesSchemas(*schemas, "v"+*version+"-local-strict", work)
	if err != nil {
		return err
	}
	locations := []string{filepath.Join(kubernetes, "{{ .ResourceKind }}{{ .KindSuffix }}.json")}
	if len(crdFolders) > 0 {
		crdSchemas := filepath.Join(work, "crds")
		if err := os.Mkdir(crdSchemas, 0o755); err != nil {
			return err
		}
		for _, folder := range crdFolders {
			if err := writeCRDSchemas(folder, crdSchemas); err != nil {
				return err
			}
		}
		locations = append(locations, filepath.Join(crdSchemas, "{{ .ResourceKind }}{{ .KindSuffix }}.json"))
	}
	check, err := validator.New(locations, validator.Opts{KubernetesVersion: *version, Strict: true})
	if err != nil {
		return err
	}
	failed, checked := 0, 0
	for _, name := range flags.Args() {
		file, err := os.Open(name)
		if err != nil {
			return err
		}
		for _, result := range check.Validate(name, file) {
			if result.Status == validator.Empty {
				continue
			}
			checked++
			what := describe(result)
			switch result.Status {
			case validator.Valid:
				fmt.Printf("valid    %s\n", what)
			default:
				failed++
				fmt.Printf("INVALID  %s: %v\n", what, result.Err)
				for _, problem := range result.ValidationErrors {
					fmt.Printf("         %s: %s\n", problem.Path, problem.Msg)
				}
			}
		}
	}
	fmt.Printf("%d resources, %d invalid\n", checked, failed)
	if failed > 0 || checked == 0 {
		return fmt.Errorf("%d of %d resources invalid", failed, checked)
	}
	return nil
}

func describe(result validator.Result) string {
	signature, err := result.Resource.Signature()
	if err != nil || signature == nil {
		return result.Resource.Path
	}
	return fmt.Sprintf("%s %s/%s", result.Resource.Path, signature.Kind, signature.Name)
}

// copyKubernetesSchemas copies one version's strict schemas out of the kubernetes-validate
// package, whose references name their shared definitions under a kubernetes.io `$id`
// (`/api/_definitions.json`), so that they point at the file beside them instead.
func copyKubernetesSchemas(root, version, work string) (string, error) {
	source := filepath.Join(root, version)
	files, err := filepath.Glob(filepath.Join(source, "*.json"))
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no schemas for Kubernetes %s in %s", version, root)
	}
	out := filepath.Join(work, version)
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", err
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		var schema map[string]any
		if err := json.Unmarshal(raw, &schema); err != nil {
			return "", fmt.Errorf("%s: %w", file, err)
		}
		delete(schema, "$id") // a kubernetes.io URL: references would resolve against it
		raw, err = json.Marshal(schema)
		if err != nil {
			return "", err
		}
		raw = bytes.ReplaceAll(raw, []byte(`"/api/_definitions.json#`), []byte(`"_definitions.json#`))
		if err := os.WriteFile(filepath.Join(out, filepath.Base(file)), raw, 0o644); err != nil {
			return "", err
		}
	}
	return out, nil
}

type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

// writeCRDSchemas turns each version of each CRD in folder into a strict JSON schema named
// as kubeconform looks it up: `<kind>-<first label of the group>-<version>.json`.
func writeCRDSchemas(folder, out string) error {
	files, err := filepath.Glob(filepath.Join(folder, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no CRD files in %s", folder)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var definition crd
		if err := yaml.Unmarshal(raw, &definition); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		group := strings.Split(definition.Spec.Group, ".")[0]
		for _, version := range definition.Spec.Versions {
			schema := version.Schema.OpenAPIV3Schema
			if schema == nil {
				continue
			}
			forbidUnknownFields(schema)
			encoded, err := json.MarshalIndent(schema, "", "  ")
			if err != nil {
				return err
			}
			name := strings.ToLower(definition.Spec.Names.Kind) + "-" + group + "-" + version.Name + ".json"
			if err := os.WriteFile(filepath.Join(out, name), encoded, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// forbidUnknownFields makes every object with declared properties closed, as the API server
// prunes (and kubeconform's strict Kubernetes schemas reject) unknown fields, except where the
// CRD keeps unknown fields on purpose.
func forbidUnknownFields(node any) {
	switch value := node.(type) {
	case map[string]any:
		_, hasProperties := value["properties"]
		_, hasAdditional := value["additionalProperties"]
		preserve, _ := value["x-kubernetes-preserve-unknown-fields"].(bool)
		if hasProperties && !hasAdditional && !preserve {
			value["additionalProperties"] = false
		}
		for _, child := range value {
			forbidUnknownFields(child)
		}
	case []any:
		for _, child := range value {
			forbidUnknownFields(child)
		}
	}
}
