package giteatest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"code.gitea.io/sdk/gitea"
)

// Server is one running Gitea with an admin account.
type Server struct {
	URL   string // http://127.0.0.1:<port>, no trailing slash
	Admin User

	binary, dir, config   string
	secret, internalToken string // fixed across port retries
	cmd                   *exec.Cmd
	exited                chan struct{} // closed when the web process has ended
	logFile               *os.File
	stopOnce              sync.Once
}

// User is a Gitea account with an API token that has every scope.
type User struct {
	Name, Password, Email, Token string
}

// Start writes a throw-away configuration (sqlite, loopback, no SSH, offline) into a new temporary
// folder, migrates the database, creates the admin user, serves, waits for /api/healthz and creates
// the admin's token. The caller must Stop it.
func Start(ctx context.Context, binary string) (*Server, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("gitea binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "ferry-gitea-")
	if err != nil {
		return nil, err
	}
	s := &Server{binary: binary, dir: dir, config: filepath.Join(dir, "app.ini"),
		secret: randomHex(32), internalToken: randomHex(48)}
	if err := s.start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	if err := s.listenOnFreePort(); err != nil {
		return err
	}
	if err := s.run(ctx, "migrate"); err != nil {
		return err
	}
	s.Admin = User{Name: "ferry-admin", Password: randomHex(12), Email: "ferry-admin@ferry.test"}
	if err := s.run(ctx, "admin", "user", "create", "--admin", "--username", s.Admin.Name,
		"--password", s.Admin.Password, "--email", s.Admin.Email, "--must-change-password=false"); err != nil {
		return err
	}
	// The free port is only known to be free when we looked; another process (a parallel test
	// package) may take it before Gitea binds. Then Gitea exits at once and we try a new port.
	var err error
	for attempt := 1; ; attempt++ {
		if err = s.serve(); err != nil {
			return err
		}
		err = s.waitHealthy(ctx)
		if !errors.Is(err, errExitedEarly) || attempt == 3 {
			break
		}
		if err = s.listenOnFreePort(); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	s.Admin.Token, err = s.createToken(ctx, s.Admin)
	return err
}

func (s *Server) listenOnFreePort() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	if err := s.writeConfig(port); err != nil {
		return fmt.Errorf("writing app.ini: %w", err)
	}
	return nil
}

var appIni = template.Must(template.New("app.ini").Parse(`APP_NAME = ferry-test
RUN_MODE = prod
RUN_USER = {{.User}}
WORK_PATH = {{.Dir}}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {{.Port}}
ROOT_URL = http://127.0.0.1:{{.Port}}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
STATIC_ROOT_PATH = {{.Static}}
APP_DATA_PATH = {{.Dir}}/data

[database]
DB_TYPE = sqlite3
PATH = {{.Dir}}/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {{.Dir}}/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = {{.Secret}}
INTERNAL_TOKEN = {{.InternalToken}}
PASSWORD_COMPLEXITY = off
MIN_PASSWORD_LENGTH = 8
PASSWORD_HASH_ALGO = pbkdf2$1000$16

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true
ENABLE_NOTIFY_MAIL = false
DEFAULT_KEEP_EMAIL_PRIVATE = true

[mailer]
ENABLED = false

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[queue]
TYPE = channel

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[webhook]
ALLOWED_HOST_LIST = loopback

[migrations]
ALLOW_LOCALNETWORKS = true

[log]
MODE = console
LEVEL = warn
ROOT_PATH = {{.Dir}}/log
`))

func (s *Server) writeConfig(port int) error {
	u, err := user.Current()
	if err != nil {
		return err
	}
	var b bytes.Buffer
	err = appIni.Execute(&b, map[string]any{
		"User": u.Username, "Dir": s.dir, "Port": port,
		// The binary has no embedded assets; options/, templates/ and public/ sit next to it.
		"Static":        filepath.Dir(s.binary),
		"Secret":        s.secret,
		"InternalToken": s.internalToken,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(s.config, b.Bytes(), 0o600)
}

func (s *Server) env() []string {
	env := append(os.Environ(),
		"HOME="+s.dir, // git config written by Gitea stays in the temporary folder
		"GITEA_WORK_DIR="+s.dir,
		"GITEA_CUSTOM="+filepath.Join(s.dir, "custom"),
		"GIT_CONFIG_NOSYSTEM=1",
	)
	if os.Geteuid() == 0 {
		env = append(env, "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true")
	}
	return env
}

func (s *Server) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--config", s.config, "--work-path", s.dir}, args...)
	cmd := exec.CommandContext(ctx, s.binary, full...)
	cmd.Env = s.env()
	cmd.Dir = s.dir
	return cmd
}

// run runs one gitea subcommand to completion (migrate, admin user create).
func (s *Server) run(ctx context.Context, args ...string) error {
	out, err := s.command(ctx, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gitea %s: %w\n%s", strings.Join(args[:min(len(args), 3)], " "), err, tail(out))
	}
	return nil
}

func (s *Server) serve() error {
	logFile, err := os.Create(filepath.Join(s.dir, "web.log"))
	if err != nil {
		return err
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
	s.logFile = logFile
	// Not bound to a context: the server outlives Start and ends in Stop.
	cmd := s.command(context.Background(), "web")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Stop also ends git children
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting gitea web: %w", err)
	}
	exited := make(chan struct{}) // this attempt's; a retry makes a new one
	s.cmd, s.exited = cmd, exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	return nil
}

// waitHealthy polls /api/healthz until it answers 200, the process dies, or ctx ends.
func (s *Server) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/healthz", nil)
		// A short per-probe timeout: something else listening on the port may accept and never answer.
		if resp, err := probeClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if strings.Contains(s.Log(), "address already in use") {
			// Gitea logs the failed bind but keeps running; end it so a retry can take a new port.
			s.kill()
			return fmt.Errorf("%w:\n%s", errExitedEarly, s.Log())
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%w:\n%s", errExitedEarly, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("waiting for gitea at %s: %w\n%s", s.URL, ctx.Err(), s.Log())
		case <-tick.C:
		}
	}
}

// Log returns the end of the server's output, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "web.log"))
	return tail(b)
}

// Stop ends the server (SIGTERM, then SIGKILL after ten seconds) and removes its folder.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.kill()
		if s.logFile != nil {
			s.logFile.Close()
		}
		_ = os.RemoveAll(s.dir)
	})
}

// kill ends the current web process and its children and waits for it.
func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil || s.exited == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// Client returns an SDK client acting as u, bound to ctx.
func (s *Server) Client(ctx context.Context, u User) (*gitea.Client, error) {
	return gitea.NewClient(s.URL, gitea.SetToken(u.Token), gitea.SetContext(ctx), gitea.SetGiteaVersion(""))
}

func (s *Server) createToken(ctx context.Context, u User) (string, error) {
	c, err := gitea.NewClient(s.URL, gitea.SetBasicAuth(u.Name, u.Password), gitea.SetContext(ctx), gitea.SetGiteaVersion(""))
	if err != nil {
		return "", err
	}
	tok, _, err := c.CreateAccessToken(gitea.CreateAccessTokenOption{
		Name: "ferry-test-" + randomHex(4), Scopes: []gitea.AccessTokenScope{gitea.AccessTokenScopeAll},
	})
	if err != nil {
		return "", fmt.Errorf("creating a token for %s: %w", u.Name, err)
	}
	return tok.Token, nil
}

// CreateUser creates a non-admin user with a token.
func (s *Server) CreateUser(ctx context.Context, name string) (User, error) {
	admin, err := s.Client(ctx, s.Admin)
	if err != nil {
		return User{}, err
	}
	u := User{Name: name, Password: randomHex(12), Email: name + "@ferry.test"}
	no := false
	if _, _, err := admin.AdminCreateUser(gitea.CreateUserOption{
		Username: u.Name, Email: u.Email, Password: u.Password, MustChangePassword: &no,
	}); err != nil {
		return User{}, fmt.Errorf("creating user %s: %w", name, err)
	}
	u.Token, err = s.createToken(ctx, u)
	return u, err
}

// Repo is a repository on the server.
type Repo struct {
	Owner, Name string
}

// FullName is "owner/name", the form scm providers take.
func (r Repo) FullName() string { return r.Owner + "/" + r.Name }

// CreateRepo creates a repository owned by owner with an initial commit on "main".
func (s *Server) CreateRepo(ctx context.Context, owner User, name string) (Repo, error) {
	c, err := s.Client(ctx, owner)
	if err != nil {
		return Repo{}, err
	}
	r, _, err := c.CreateRepo(gitea.CreateRepoOption{Name: name, AutoInit: true, DefaultBranch: "main", Readme: "Default"})
	if err != nil {
		return Repo{}, fmt.Errorf("creating repository %s/%s: %w", owner.Name, name, err)
	}
	return Repo{Owner: r.Owner.UserName, Name: r.Name}, nil
}

// AddCollaborator gives user write access to repo, acting as the repository's owner.
func (s *Server) AddCollaborator(ctx context.Context, owner User, repo Repo, user string) error {
	c, err := s.Client(ctx, owner)
	if err != nil {
		return err
	}
	write := gitea.AccessModeWrite
	if _, err := c.AddCollaborator(repo.Owner, repo.Name, user, gitea.AddCollaboratorOption{Permission: &write}); err != nil {
		return fmt.Errorf("adding %s to %s: %w", user, repo.FullName(), err)
	}
	return nil
}

// GitURL is repo's HTTP clone URL with u's token in it, for the git CLI in tests only.
func (s *Server) GitURL(u User, repo Repo) string {
	host := strings.TrimPrefix(s.URL, "http://")
	return fmt.Sprintf("http://%s:%s@%s/%s.git", u.Name, u.Token, host, repo.FullName())
}

// freePort is a variable so a test can hand out a port that is already taken.
var freePort = func() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte) string {
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

var probeClient = &http.Client{Timeout: 2 * time.Second}

var (
	errNoBinary    = errors.New("FERRY_GITEA is not set")
	errExitedEarly = errors.New("gitea web exited before becoming healthy")
)
