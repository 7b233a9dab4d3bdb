// pulumi-language-python for the e2e toolchain: the Python language host the Pulumi CLI starts to run this
// project's program and its policy pack.
//
// Why it is ours: the real host lives in its own Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3), which the Go module proxy reachable here
// refuses ("403 Forbidden: This module version is not available", every version). Its logic rests on packages that
// ARE served with the pinned SDK: python/toolchain (how a virtualenv is found, created, validated and run, and which
// packages it holds), the root package's PolicyProxy (how a policy pack receives its stack configuration) and
// rpcutil (serving, health checks, output streams). This host calls those, and follows the real host's
// sdk/python/cmd/pulumi-language-python/main.go (read at pulumi/pulumi v3.259.0, the newest tag the source mirror
// reachable here holds; the CLI is v3.274.1) for everything around them:
//   - options: `virtualenv`, `typechecker` (mypy or pyright, run before the program; a failure fails the run) and
//     `toolchain` (pip, poetry or uv); any other value is refused with the real host's message; a plugin without
//     a virtualenv option gets `venv`.
//   - GetRequiredPackages: ensures the virtualenv (creates it and installs requirements.txt when it is missing, as
//     the real host does; so a missing virtualenv is NOT an error under `pulumi preview`/`up`), then reports every
//     installed Pulumi package (a pulumi-plugin.json with `resource: true`, or a `pulumi-` name) with its plugin
//     name, version, server and parameterization. GetRequiredPlugins is Unimplemented, as in the real host.
//   - Run: PULUMI_CONFIG is set only when the engine sent config (an empty map is not sent as `null`),
//     PULUMI_CONFIG_SECRET_KEYS defaults to `[]`; the program is interrupted (SIGINT, then killed after 5 s) on the
//     Cancel RPC or when the engine drops the request; exit code 32 bails, others are the real host's messages.
//   - RunPlugin: policy packs run as `python -u -m pulumi.policy <args> <pack dir>` in the pack's folder behind
//     PolicyProxy; a non-zero exit is reported as the plugin's exit code.
// Not implemented (Unimplemented, no scenario needs them): codegen (GenerateProject/Program/Package, Pack, Link),
// `pulumi new` prompts and templates, debugging (attachDebugger), non-analyzer plugins, tracing/OTel.
// docs/real-cli.md lists these; tests/test_e2e_langhost.py pins them.
//
// Protocol: pulumi/proto/pulumi/language.proto. The program runs through our exec shim,
// `pulumi-language-python-exec` next to this binary, with the arguments the real host passes.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdk "github.com/pulumi/pulumi/sdk/v3"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	version = "3.274.1-kms-aks-e2e"
	// The exit code with which the exec shim says the user already saw an actionable message.
	reportedExitCode = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	exec          string
	cancelCtx     context.Context // done once the engine called Cancel
	cancel        context.CancelFunc
}

func main() {
	flag.String("root", "", "project root (passed by the CLI; the RPCs carry it too)")
	flag.String("tracing", "", "tracing endpoint (accepted, not used)")
	flag.Parse()
	self, err := os.Executable()
	if err != nil {
		cmdutil.Exit(err)
	}
	exe := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(exe); err != nil {
		cmdutil.Exit(fmt.Errorf("missing executor %s: %w", exe, err))
	}
	cancelCtx, cancel := context.WithCancel(context.Background())
	h := &host{exec: exe, cancelCtx: cancelCtx, cancel: cancel}
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[0]
	}

	// Stop serving on SIGINT, and when the engine goes away (the real host's health check).
	signals, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt)
	stop := make(chan bool)
	go func() {
		<-signals.Done()
		stopSignals()
		close(stop)
	}()
	if h.engineAddress != "" {
		if err := rpcutil.Healthcheck(signals, h.engineAddress, 5*time.Minute, stopSignals); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start health check host RPC server: %w", err))
		}
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}
	fmt.Printf("%d\n", handle.Port) // the CLI reads the port from the first line of stdout
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.engineAddress = req.EngineAddress
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// Cancel interrupts a running program, as the real host does.
func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.cancel()
	return &emptypb.Empty{}, nil
}

// options reads the runtime options of Pulumi.yaml / PulumiPolicy.yaml as the real host's parseOptions does.
func options(info *pulumirpc.ProgramInfo, isPlugin bool) (toolchain.PythonOptions, error) {
	opts := toolchain.PythonOptions{Root: info.RootDirectory, ProgramDir: info.ProgramDirectory}
	raw := info.Options.AsMap()
	if value, ok := raw["virtualenv"]; ok {
		venv, isString := value.(string)
		if !isString {
			return opts, errors.New("virtualenv option must be a string")
		}
		opts.Virtualenv = venv
	}
	if value, ok := raw["typechecker"]; ok {
		name, isString := value.(string)
		if !isString {
			return opts, errors.New("typechecker option must be a string")
		}
		switch name {
		case "mypy":
			opts.Typechecker = toolchain.TypeCheckerMypy
		case "pyright":
			opts.Typechecker = toolchain.TypeCheckerPyright
		default:
			return opts, fmt.Errorf("unsupported typechecker option: %s", name)
		}
	}
	if value, ok := raw["toolchain"]; ok {
		name, isString := value.(string)
		if !isString {
			return opts, errors.New("toolchain option must be a string")
		}
		switch name {
		case "pip":
			opts.Toolchain = toolchain.Pip
		case "poetry":
			opts.Toolchain = toolchain.Poetry
		case "uv":
			opts.Toolchain = toolchain.Uv
		default:
			return opts, fmt.Errorf("unsupported toolchain option: %s", name)
		}
	}
	// Plugins never run in the ambient interpreter: without a virtualenv option they get `venv`.
	if isPlugin && (opts.Toolchain == toolchain.Pip || opts.Toolchain == toolchain.Auto) && opts.Virtualenv == "" {
		opts.Virtualenv = "venv"
	}
	return opts, nil
}

func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return nil, status.Errorf(codes.Unimplemented, "method GetRequiredPlugins not implemented")
}

// engineLog writes a stream of ephemeral log messages to the engine (what `pulumi` shows while it installs).
type engineLog struct {
	ctx      context.Context
	client   pulumirpc.EngineClient
	stream   int32
	severity pulumirpc.LogSeverity
}

func (w *engineLog) Write(p []byte) (int, error) {
	_, err := w.client.Log(w.ctx, &pulumirpc.LogRequest{
		Message: strings.ToValidUTF8(string(p), "\uFFFD"), Ephemeral: true, StreamId: w.stream, Severity: w.severity,
	})
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) engineWriters(ctx context.Context) (io.Writer, io.Writer, io.Closer, error) {
	conn, err := grpc.NewClient(h.engineAddress, grpc.WithTransportCredentials(insecure.NewCredentials()),
		rpcutil.GrpcChannelOptions())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("language host could not make connection to engine: %w", err)
	}
	client := pulumirpc.NewEngineClient(conn)
	stream := rand.Int31() //nolint:gosec // a stream id, not a secret
	return &engineLog{ctx, client, stream, pulumirpc.LogSeverity_INFO},
		&engineLog{ctx, client, stream, pulumirpc.LogSeverity_ERROR}, conn, nil
}

// pluginJSONScript prints, for each distribution named on the command line, the path of the pulumi-plugin.json in
// its top-level package ("" when it has none).
const pluginJSONScript = `import importlib.metadata as md, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        files = md.distribution(name).files or []
    except Exception:
        files = []
    paths = [str(f.locate()) for f in files if f.name == "pulumi-plugin.json" and len(f.parts) == 2]
    found[name] = paths[0] if paths else ""
print(json.dumps(found))`

// GetRequiredPackages ensures the program's virtualenv (creating it when missing) and reports the Pulumi packages
// installed in it, as the real host does.
func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	opts, err := options(req.Info, false)
	if err != nil {
		return nil, err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	stdout, stderr, conn, err := h.engineWriters(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := tc.EnsureVenv(ctx, req.Info.ProgramDirectory, false, true, stdout, stderr); err != nil {
		return nil, err
	}
	installed, err := tc.ListPackages(ctx, true)
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	if len(installed) > 0 {
		args := []string{"-c", pluginJSONScript}
		for _, pkg := range installed {
			args = append(args, pkg.Name)
		}
		cmd, err := tc.Command(ctx, args...)
		if err != nil {
			return nil, err
		}
		if out, err := cmd.Output(); err == nil {
			if err := json.Unmarshal(out, &paths); err != nil {
				return nil, fmt.Errorf("failed to parse pulumi-plugin.json paths: %w", err)
			}
		}
	}
	packages := []*pulumirpc.PackageDependency{}
	for _, pkg := range installed {
		if pkg.Name == "pulumi-policy" || pkg.Name == "pulumi-esc-sdk" {
			continue // known to have no plugin
		}
		var manifest *plugin.PulumiPluginJSON
		if path := paths[pkg.Name]; path != "" {
			if data, err := os.ReadFile(path); err == nil {
				manifest = &plugin.PulumiPluginJSON{}
				if err := json.Unmarshal(data, manifest); err != nil {
					return nil, fmt.Errorf("failed to parse pulumi-plugin.json for %s: %w", pkg.Name, err)
				}
			}
		}
		if manifest == nil && !strings.HasPrefix(pkg.Name, "pulumi-") {
			continue
		}
		if dep := packageDependency(pkg, manifest); dep != nil {
			packages = append(packages, dep)
		}
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

// packageDependency is the resource plugin a Python package needs, or nil (no plugin, or a version that cannot be
// told from the package's).
func packageDependency(pkg plugin.DependencyInfo, manifest *plugin.PulumiPluginJSON) *pulumirpc.PackageDependency {
	dep := &pulumirpc.PackageDependency{Kind: "resource"}
	if manifest != nil {
		if !manifest.Resource {
			return nil
		}
		dep.Name, dep.Version, dep.Server = manifest.Name, manifest.Version, manifest.Server
		if p := manifest.Parameterization; p != nil {
			dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
		}
		if p := manifest.ExtensionParameterization; p != nil {
			dep.Extension = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
		}
	}
	if dep.Name == "" {
		dep.Name = strings.TrimPrefix(pkg.Name, "pulumi-")
	}
	if dep.Version == "" {
		semver, ok := pluginVersion(pkg.Version)
		if !ok {
			return nil
		}
		dep.Version = semver
	}
	if !strings.HasPrefix(dep.Version, "v") {
		dep.Version = "v" + dep.Version
	}
	return dep
}

// pluginVersion turns a PEP 440 release (N(.N)*[{a|b|rc}N][.postN][.devN]) into the plugin's semver, as the real
// host does: at least three numbers, a/b/rc as -alpha.N/-beta.N/-rc.N, .postN and .devN as build metadata.
func pluginVersion(text string) (string, bool) {
	digits := func(s string) (string, string) {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return s[:i], s[i:]
	}
	var numbers []string
	rest := text
	for {
		number, after := digits(rest)
		if number == "" {
			break
		}
		numbers = append(numbers, number)
		rest = after
		if len(rest) > 1 && rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' {
			rest = rest[1:]
			continue
		}
		break
	}
	if len(numbers) == 0 || strings.HasPrefix(rest, "!") {
		return "", false
	}
	for len(numbers) < 3 {
		numbers = append(numbers, "0")
	}
	version := strings.Join(numbers, ".")
	for _, pre := range []struct{ tag, label string }{{"rc", "rc"}, {"a", "alpha"}, {"b", "beta"}} {
		if strings.HasPrefix(rest, pre.tag) {
			var n string
			n, rest = digits(rest[len(pre.tag):])
			version += "-" + pre.label + "." + n
			break
		}
	}
	build := ""
	if strings.HasPrefix(rest, ".post") {
		var n string
		n, rest = digits(rest[len(".post"):])
		build = "post" + n
	}
	if strings.HasPrefix(rest, ".dev") {
		var n string
		n, rest = digits(rest[len(".dev"):])
		build += "dev" + n
	}
	if rest != "" {
		return "", false
	}
	if build != "" {
		version += "+" + build
	}
	return version, true
}

// InstallDependencies is what `pulumi install` runs: the toolchain creates the virtualenv and installs
// requirements.txt into it, exactly as the real host does.
func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	opts, err := options(req.Info, req.IsPlugin)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeInstallDependenciesStreams(server, req.IsTerminal)
	if err != nil {
		return err
	}
	defer closer.Close()
	fmt.Fprint(stdout, "Installing dependencies...\n\n")
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	if err := tc.InstallDependencies(server.Context(), req.Info.ProgramDirectory, req.UseLanguageVersionTools, true,
		stdout, stderr); err != nil {
		return err
	}
	fmt.Fprint(stdout, "Finished installing dependencies\n\n")
	return closer.Close()
}

// typecheck runs mypy or pyright over the program folder when the `typechecker` option asks for one.
func typecheck(ctx context.Context, tc toolchain.Toolchain, opts toolchain.PythonOptions, programDir string) error {
	var checker string
	switch opts.Typechecker {
	case toolchain.TypeCheckerMypy:
		checker = "mypy"
	case toolchain.TypeCheckerPyright:
		checker = "pyright"
	default:
		return nil
	}
	installed, err := tc.ListPackages(ctx, true)
	if err != nil {
		return err
	}
	found := false
	for _, pkg := range installed {
		found = found || pkg.Name == checker
	}
	if !found {
		install := fmt.Sprintf("Please install it using `poetry add %s`.", checker)
		if opts.Toolchain != toolchain.Poetry {
			install = fmt.Sprintf("Please add an entry for %s to requirements.txt and run `%s/bin/pip install -r "+
				"requirements.txt`", checker, opts.Virtualenv)
		}
		return fmt.Errorf("The typechecker option is set to %s, but %s is not installed. %s", //nolint:revive,stylecheck
			checker, checker, install)
	}
	args := []string{"-m", checker}
	if checker == "mypy" {
		venv, err := tc.VirtualEnvPath(ctx)
		if err != nil {
			return err
		}
		relative, err := filepath.Rel(programDir, venv)
		if err != nil {
			return err
		}
		args = append(args, "--exclude", relative)
	}
	cmd, err := tc.Command(ctx, append(args, programDir)...)
	if err != nil {
		return err
	}
	var output bytes.Buffer
	cmd.Stdout = io.MultiWriter(os.Stdout, &output)
	cmd.Stderr = io.MultiWriter(os.Stderr, &output)
	cmd.Dir = programDir
	if err := cmd.Run(); err != nil {
		if output.Len() > 0 {
			return fmt.Errorf("%s failed: %w\n%s", checker, err, output.String())
		}
		return fmt.Errorf("%s failed: %w", checker, err)
	}
	return nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	if h.engineAddress == "" {
		return nil, errors.New("when debugging or running explicitly, must call Handshake before Run")
	}
	if req.GetAttachDebugger() {
		return nil, status.Error(codes.Unimplemented, "this e2e language host does not attach debuggers")
	}
	opts, err := options(req.Info, false)
	if err != nil {
		return nil, err
	}
	args := []string{h.exec}
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engineAddress)
	flagArg("project", req.GetProject())
	flagArg("root_directory", req.GetInfo().GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", req.GetPwd())
	flagArg("dry_run", strconv.FormatBool(req.GetDryRun()))
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("organization", req.GetOrganization())
	args = append(args, req.Info.EntryPoint)
	args = append(args, req.GetArgs()...)

	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return nil, err
	}
	// The program stops when the engine calls Cancel or drops this request: SIGINT first, a kill 5 s later.
	runCtx, stopRun := context.WithCancel(h.cancelCtx)
	defer stopRun()
	context.AfterFunc(ctx, stopRun)
	cmd, err := tc.Command(runCtx, args...)
	if err != nil {
		return nil, err
	}
	cmd.Cancel = func() error {
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	// No config: no PULUMI_CONFIG at all (the SDK then reads none); the secret keys default to an empty list.
	if config := req.GetConfig(); config != nil {
		encoded, err := json.Marshal(config)
		if err != nil {
			return nil, fmt.Errorf("failed to serialize configuration: %w", err)
		}
		env = append(env, "PULUMI_CONFIG="+string(encoded))
	}
	secretKeys := "[]"
	if keys := req.GetConfigSecretKeys(); keys != nil {
		encoded, err := json.Marshal(keys)
		if err != nil {
			return nil, fmt.Errorf("failed to serialize configuration secret keys: %w", err)
		}
		secretKeys = string(encoded)
	}
	cmd.Env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+secretKeys)

	if err := typecheck(ctx, tc, opts, req.Info.ProgramDirectory); err != nil {
		return nil, err
	}

	// The real host's answers, word for word: 32 means the program already showed the user an actionable message.
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("problem executing program (could not run language executor): %v", err),
			}, nil
		}
		waitStatus, ok := exitErr.Sys().(syscall.WaitStatus)
		switch {
		case ok && waitStatus.ExitStatus() == reportedExitCode:
			return &pulumirpc.RunResponse{Bail: true}, nil
		case ok && waitStatus.ExitStatus() > 0:
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("program exited with non-zero exit code: %d", waitStatus.ExitStatus()),
			}, nil
		default:
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("program exited unexpectedly: %v", exitErr)}, nil
		}
	}
	return &pulumirpc.RunResponse{}, nil
}

// RunPlugin starts a policy pack as the real host does: `python -u -m pulumi.policy <args> <pack dir>` with the
// pack's own toolchain options (PulumiPolicy.yaml), in the pack's folder, behind the SDK's PolicyProxy so that the
// pack sees the stack's configuration.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer) error {
	if req.Kind != string(apitype.AnalyzerPlugin) {
		return fmt.Errorf("this e2e language host runs policy packs only, not %q plugins", req.Kind)
	}
	ctx := server.Context()
	opts, err := options(req.Info, false)
	if err != nil {
		return err
	}
	tc, err := toolchain.ResolveToolchain(opts)
	if err != nil {
		return err
	}
	// Like the real host, no venv validation here: a missing pack virtualenv fails when python is started.
	args := append([]string{"-u", "-m", "pulumi.policy"}, req.Args...)
	cmd, err := tc.Command(ctx, append(args, req.Info.ProgramDirectory)...)
	if err != nil {
		return err
	}
	closer, stdout, stderr, err := rpcutil.MakeRunPluginStreams(server, false)
	if err != nil {
		return err
	}
	defer closer.Close()
	cmd.Dir = req.Info.ProgramDirectory

	proxy, stdout, err := sdk.NewPolicyProxy(ctx, stdout)
	if err != nil {
		return fmt.Errorf("could not start policy pack proxy: %w", err)
	}
	config, err := proxy.AwaitConfiguration(ctx)
	if err != nil {
		return fmt.Errorf("could not get stack configuration: %w", err)
	}
	if config != nil {
		add := func(key, value string) {
			if value != "" {
				cmd.Env = append(cmd.Env, key+"="+value)
			}
		}
		add("PULUMI_ORGANIZATION", config.Organization)
		add("PULUMI_PROJECT", config.Project)
		add("PULUMI_STACK", config.Stack)
		add("PULUMI_DRY_RUN", strconv.FormatBool(config.DryRun))
		if config.Config != nil {
			configJSON, err := json.Marshal(config.Config)
			if err != nil {
				return fmt.Errorf("could not marshal stack configuration: %w", err)
			}
			add("PULUMI_CONFIG", string(configJSON))
		}
	}
	cmd.Env = append(cmd.Env, req.Env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("problem executing plugin program (could not run language executor): %w", err)
	}
	if err := proxy.Attach(ctx, cmd); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if waitStatus, ok := exitErr.Sys().(syscall.WaitStatus); ok {
				return server.Send(&pulumirpc.RunPluginResponse{
					Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(waitStatus.ExitStatus())},
				})
			}
		}
		return fmt.Errorf("could not attach policy pack proxy: %w", err)
	}
	return closer.Close()
}

func (h *host) About(context.Context, *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	return &pulumirpc.AboutResponse{Executable: "python3"}, nil
}
