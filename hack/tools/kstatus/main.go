// Command kstatus prints the kstatus result of Kubernetes objects: what Flux's kustomize-controller
// (`wait: true`, `healthChecks`) decides about a custom resource: Current, InProgress, Failed or Terminating.
//
//	kstatus [-kustomization ks.yaml] object.yaml...
//
// Without -kustomization: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute (the status rules of Flux's fork,
// github.com/fluxcd/cli-utils, are the same code). With -kustomization, a Flux Kustomization whose
// spec.healthCheckExprs name the object's kind: Flux's own CEL status reader (github.com/fluxcd/pkg/runtime/cel,
// the version kustomize-controller v1.9 builds with) decides instead, as in the controller; an expression
// that cannot be evaluated gives Unknown with the error as the message.
//
// Prints one JSON line {"object","status","message"} per object (files may hold several documents, and a
// kind List is expanded). Exits 1 on unreadable input.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// celReader is set from -kustomization: Flux's status reader for the kinds its healthCheckExprs name.
var celReader engine.StatusReader

func main() {
	ks := flag.String("kustomization", "", "a Flux Kustomization whose spec.healthCheckExprs apply (as in kustomize-controller)")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: kstatus [-kustomization ks.yaml] object.yaml...") }
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *ks != "" {
		reader, err := loadExprs(*ks)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", *ks, err)
			os.Exit(1)
		}
		celReader = reader
	}
	for _, path := range flag.Args() {
		if err := computeFile(path, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func computeFile(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	count := 0
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, obj); err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" {
			return fmt.Errorf("document %d: apiVersion and kind are required", i)
		}
		objs := []unstructured.Unstructured{*obj}
		if obj.IsList() {
			list, err := obj.ToList()
			if err != nil {
				return fmt.Errorf("document %d: %w", i, err)
			}
			objs = list.Items
		}
		for _, o := range objs {
			if err := emit(w, &o); err != nil {
				return fmt.Errorf("document %d: %w", i, err)
			}
			count++
		}
	}
	if count == 0 {
		return errors.New("no object")
	}
	return nil
}

// loadExprs reads spec.healthCheckExprs of a Flux Kustomization into Flux's CEL status reader. The reader
// never needs a RESTMapper or a cluster reader for an object it is given (generic status reader).
func loadExprs(path string) (engine.StatusReader, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ks struct {
		Kind string `json:"kind"`
		Spec struct {
			HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &ks); err != nil {
		return nil, err
	}
	if ks.Kind != "Kustomization" || len(ks.Spec.HealthCheckExprs) == 0 {
		return nil, errors.New("want a Flux Kustomization with spec.healthCheckExprs")
	}
	newReader, err := cel.NewStatusReader(ks.Spec.HealthCheckExprs)
	if err != nil {
		return nil, fmt.Errorf("spec.healthCheckExprs: %w", err)
	}
	return newReader(nil), nil
}

func compute(obj *unstructured.Unstructured) (string, string, error) {
	if celReader != nil && celReader.Supports(obj.GroupVersionKind().GroupKind()) {
		res, err := celReader.ReadStatusForObject(context.Background(), nil, obj)
		if err != nil {
			return "", "", err
		}
		if res.Error != nil {
			return res.Status.String(), res.Error.Error(), nil
		}
		return res.Status.String(), res.Message, nil
	}
	res, err := status.Compute(obj)
	if err != nil {
		return "", "", err
	}
	return res.Status.String(), res.Message, nil
}

func emit(w io.Writer, obj *unstructured.Unstructured) error {
	st, msg, err := compute(obj)
	if err != nil {
		return fmt.Errorf("%s/%s: %w", obj.GetKind(), obj.GetName(), err)
	}
	ref := obj.GetKind() + "/" + obj.GetName()
	if obj.GetNamespace() != "" {
		ref = obj.GetKind() + "/" + obj.GetNamespace() + "/" + obj.GetName()
	}
	return json.NewEncoder(w).Encode(map[string]string{
		"object": ref, "status": st, "message": msg})
}
