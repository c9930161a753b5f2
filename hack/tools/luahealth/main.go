// Command luahealth evaluates an Argo CD Lua health check with Argo CD's own code, so that the check in
// manifests/argocd/ is tested the way the application controller runs it, not with a look-alike interpreter.
//
// The path is the one `argocd admin settings resource-overrides health` takes: the argocd-cm ConfigMap is
// loaded into Argo CD's SettingsManager (over an in-memory clientset), GetResourceOverrides turns its
// `resource.customizations.health.<group>_<Kind>` keys into overrides, and gitops-engine's GetResourceHealth
// runs the script through util/lua (gopher-lua, `obj` built by Argo CD's decodeValue, standard libraries
// off unless `resource.customizations.useOpenLibs.<group>_<Kind>` says otherwise).
//
//	luahealth test -argocd-cm argocd-cm-patch.yaml [-script health.lua] health_test.yaml
//	luahealth eval -argocd-cm argocd-cm-patch.yaml object.yaml...
//
// test: runs every case of an Argo CD health_test.yaml and exits 1 when a status or message differs.
// eval: prints one JSON line {"object","status","message"} per object (files may hold several documents).
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
	"path/filepath"

	healthutil "github.com/argoproj/gitops-engine/pkg/health"
	log "github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

const usage = `usage:
  luahealth test -argocd-cm FILE [-script health.lua] health_test.yaml...
  luahealth eval -argocd-cm FILE object.yaml...`

// healthTest is Argo CD's health_test.yaml (resource_customizations/<group>/<Kind>/health_test.yaml).
type healthTest struct {
	Tests []struct {
		InputPath    string `json:"inputPath"`
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
	} `json:"tests"`
}

func main() {
	log.SetLevel(log.FatalLevel) // as `argocd admin settings` does: SettingsManager logs at Info
	if len(os.Args) < 2 {
		fail(usage)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	cmPath := fs.String("argocd-cm", "", "the argocd-cm ConfigMap (or the patch) holding resource.customizations.health.<group>_<Kind>")
	script := fs.String("script", "", "test only: health.lua, which must equal the script in -argocd-cm")
	_ = fs.Parse(os.Args[2:])
	if *cmPath == "" || fs.NArg() == 0 {
		fail(usage)
	}
	overrides, err := loadOverrides(*cmPath)
	if err != nil {
		fail(fmt.Sprintf("%s: %v", *cmPath, err))
	}
	switch os.Args[1] {
	case "test":
		if *script != "" {
			if err := sameScript(*script, *cmPath, overrides); err != nil {
				fail(err.Error())
			}
		}
		failed := 0
		for _, path := range fs.Args() {
			n, err := runTests(path, overrides)
			if err != nil {
				fail(fmt.Sprintf("%s: %v", path, err))
			}
			failed += n
		}
		if failed > 0 {
			fail(fmt.Sprintf("%d health test(s) failed", failed))
		}
	case "eval":
		for _, path := range fs.Args() {
			if err := evalFile(path, overrides); err != nil {
				fail(fmt.Sprintf("%s: %v", path, err))
			}
		}
	default:
		fail(usage)
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "luahealth:", msg)
	os.Exit(1)
}

// loadOverrides mirrors createSettingsManager in Argo CD's cmd/argocd/commands/admin/settings.go.
func loadOverrides(path string) (map[string]v1alpha1.ResourceOverride, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(data, &cm); err != nil {
		return nil, fmt.Errorf("not a ConfigMap: %w", err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argocd-cm" {
		return nil, fmt.Errorf("kind/metadata.name: want ConfigMap argocd-cm, got %s %q", cm.Kind, cm.Name)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret"},
		Data: map[string][]byte{"admin.password": []byte("test"), "server.secretkey": []byte("test")}}
	for _, o := range []metav1.Object{&cm, secret} {
		o.SetNamespace("default")
		o.SetLabels(map[string]string{"app.kubernetes.io/part-of": "argocd"})
	}
	mgr := settings.NewSettingsManager(context.Background(), fake.NewClientset(&cm, secret), "default")
	if err := mgr.ResyncInformers(); err != nil {
		return nil, err
	}
	return mgr.GetResourceOverrides()
}

func sameScript(scriptPath, cmPath string, overrides map[string]v1alpha1.ResourceOverride) error {
	want, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	for key, o := range overrides {
		if o.HealthLua == string(want) {
			return nil
		} else if o.HealthLua != "" {
			return fmt.Errorf("%s differs from the health script for %s in %s: copy it there (same bytes)",
				scriptPath, key, cmPath)
		}
	}
	return fmt.Errorf("%s: no resource.customizations.health.* key", cmPath)
}

// health runs the check the way the application controller does (gitops-engine GetResourceHealth with Argo
// CD's Lua overrides). A script error is an error here, not an Unknown status that could pass unnoticed.
func health(obj *unstructured.Unstructured, overrides map[string]v1alpha1.ResourceOverride) (*healthutil.HealthStatus, error) {
	h, err := healthutil.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
	if err != nil {
		return nil, err
	}
	if h == nil {
		gvk := obj.GroupVersionKind()
		return nil, fmt.Errorf("no health check configured for %s/%s", gvk.Group, gvk.Kind)
	}
	return h, nil
}

func readObject(path string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func runTests(path string, overrides map[string]v1alpha1.ResourceOverride) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var ht healthTest
	if err := yaml.UnmarshalStrict(data, &ht); err != nil {
		return 0, err
	}
	if len(ht.Tests) == 0 {
		return 0, errors.New("tests: empty (want a list of {healthStatus: {status, message}, inputPath})")
	}
	failed := 0
	for i, tc := range ht.Tests {
		if tc.InputPath == "" || tc.HealthStatus.Status == "" {
			return failed, fmt.Errorf("tests[%d]: inputPath and healthStatus.status are required", i)
		}
		obj, err := readObject(filepath.Join(filepath.Dir(path), tc.InputPath))
		if err != nil {
			return failed, fmt.Errorf("tests[%d].inputPath: %w", i, err)
		}
		got, err := health(obj, overrides)
		if err != nil {
			return failed, fmt.Errorf("tests[%d] (%s): %w", i, tc.InputPath, err)
		}
		if string(got.Status) != tc.HealthStatus.Status || got.Message != tc.HealthStatus.Message {
			failed++
			fmt.Printf("FAIL %s\n  want %s: %q\n  got  %s: %q\n", tc.InputPath, tc.HealthStatus.Status,
				tc.HealthStatus.Message, got.Status, got.Message)
			continue
		}
		fmt.Printf("ok   %s -> %s: %s\n", tc.InputPath, got.Status, got.Message)
	}
	return failed, nil
}

func evalFile(path string, overrides map[string]v1alpha1.ResourceOverride) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	reader := utilyaml.NewYAMLReader(bufio.NewReader(f))
	docs := 0
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
		h, err := health(obj, overrides)
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if err := emit(os.Stdout, obj, string(h.Status), h.Message); err != nil {
			return err
		}
		docs++
	}
	if docs == 0 {
		return errors.New("no object")
	}
	return nil
}

func emit(w io.Writer, obj *unstructured.Unstructured, status, message string) error {
	ref := obj.GetKind() + "/" + obj.GetName()
	if obj.GetNamespace() != "" {
		ref = obj.GetKind() + "/" + obj.GetNamespace() + "/" + obj.GetName()
	}
	return json.NewEncoder(w).Encode(map[string]string{"object": ref, "status": status, "message": message})
}
