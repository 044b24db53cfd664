package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferrycd/ferry/internal/sync"
	"github.com/ferrycd/ferry/internal/text"
)

// Ferry reads and patches Argo CD Applications only; with a tenant's ServiceAccount (spec.serviceAccountName) that
// account needs the same verbs on the Applications its stages name.
// +kubebuilder:rbac:groups=argoproj.io,resources=applications,verbs=get;list;watch;patch

// applicationsGVR is Argo CD's Application resource.
var applicationsGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

const (
	// argoRefreshAnnotation asks Argo CD's application controller to compare the Application with Git again now;
	// it removes the annotation once done.
	argoRefreshAnnotation = "argocd.argoproj.io/refresh"
	// argoUsername is who Argo CD records as having asked for a sync.
	argoUsername = "ferry"
	// argoCallTimeout caps one read or patch of an Application when the reconcile's own deadline is further away.
	argoCallTimeout = 30 * time.Second
	// argoMessageMax and argoResourcesKept bound what is kept of an Application: Argo CD's messages can hold whole
	// kubectl outputs, and status.resources lists every object the Application manages.
	argoMessageMax    = 1024
	argoResourcesKept = 8
)

// ArgoCDSyncer is the Syncer of stages in sync.mode ArgoCD: the Argo CD Application named by the stage syncs the
// stage's path from the repository Ferry pins; Ferry asks it to sync the pinned commit and reads whether it did.
// It keeps one watch of Applications per cluster identity and namespace that a stage names (externalWatches), so
// that a change of an Application's status wakes its stage at once.
type ArgoCDSyncer struct {
	// Refresh is the refresh Ferry asks for with each sync: "normal" (the default: compare with Git, reusing
	// manifests Argo CD generated for a commit before) or "hard" (generate them again).
	Refresh string

	*externalWatches
}

// argoApplications is how Ferry watches Argo CD's Applications: the cache keeps the fields Ferry reads
// (pruneApplication), and only a change of status or operation wakes a stage (statusChanged).
var argoApplications = &externalKind{gvr: applicationsGVR, controller: "Argo CD", kind: "Application",
	prune: pruneApplication, changed: statusChanged}

// NewArgoCDSyncer returns a Syncer for stages in mode ArgoCD, watching nothing yet.
func NewArgoCDSyncer() *ArgoCDSyncer {
	return &ArgoCDSyncer{externalWatches: newExternalWatches()}
}

// Apply asks the stage's Application to sync revision: a refresh, so that Argo CD compares it with Git now
// rather than at its next poll, and — when the Application has no automated sync — a sync operation to exactly
// revision. Asking for a revision Argo CD already syncs or has synced changes nothing.
func (a *ArgoCDSyncer) Apply(ctx context.Context, t SyncTarget, _, revision string) ([]sync.ObjectRef, error) {
	ctx, cancel := context.WithTimeout(ctx, argoCallTimeout)
	defer cancel()
	c, err := a.use(t, argoApplications)
	if err != nil {
		return nil, err
	}
	// A sync operation is asked for at the resourceVersion read, so that one set meanwhile by someone else is
	// never overwritten; Argo CD writes the status often, so a conflict is read again at once a few times.
	for range argoConflictRetries {
		if err = a.ask(ctx, c, t, revision, orDefault(a.Refresh, "normal")); !apierrors.IsConflict(err) {
			break
		}
	}
	return nil, err
}

// argoConflictRetries bounds the reads and patches of one Apply that meet a newer Application.
const argoConflictRetries = 5

// ask reads the Application from the API server and patches it with what it takes to sync revision, if anything.
func (a *ArgoCDSyncer) ask(ctx context.Context, c *externalCluster, t SyncTarget, revision, refresh string) error {
	u, err := c.get(ctx, argoApplications, t.External)
	if err != nil {
		return err
	}
	app, err := applicationOf(u)
	if err != nil {
		return err
	}
	patch, err := app.syncPatch(revision, refresh, t.Prune)
	if err != nil || patch == nil {
		return err
	}
	_, err = c.client.Resource(applicationsGVR).Namespace(t.External.Namespace).Patch(ctx, t.External.Name,
		types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "ferry"})
	if apierrors.IsNotFound(err) {
		return argoApplications.missing(t.External, err)
	}
	return err
}

// Objects names nothing: Argo CD renders the stage, and Ferry reads its health from the Application.
func (a *ArgoCDSyncer) Objects(SyncTarget, string) ([]sync.ObjectRef, error) { return nil, nil }

// Render is refused: what a stage in mode ArgoCD declares is Argo CD's to render.
func (a *ArgoCDSyncer) Render(t SyncTarget, _ string) ([]*unstructured.Unstructured, error) {
	return nil, fmt.Errorf("%s renders this stage (sync.mode ArgoCD); Ferry does not", t.External)
}

// Health reads the stage's Application: healthy only once Argo CD reports Ferry's commit (t.Revision) synced and
// healthy — an Application synced at an older commit says nothing of Ferry's.
func (a *ArgoCDSyncer) Health(ctx context.Context, t SyncTarget, _ []sync.ObjectRef, _ string) (Health, error) {
	ctx, cancel := context.WithTimeout(ctx, argoCallTimeout)
	defer cancel()
	_, app, err := readAs(ctx, a.externalWatches, t, argoApplications, applicationOf)
	if err != nil {
		return Health{}, err
	}
	return app.assess(t.External, t.Revision), nil
}

// Expect starts watching the Applications targets name, so that their changes wake the stages from now on.
func (a *ArgoCDSyncer) Expect(targets []SyncTarget) error {
	for _, t := range targets {
		if _, err := a.use(t, argoApplications); err != nil {
			return err
		}
	}
	return nil
}

// argoApplication is the part of an Argo CD Application (argoproj.io/v1alpha1) that Ferry reads. Its fields follow
// the types of github.com/argoproj/argo-cd/v3 v3.6.1, pkg/apis/application/v1alpha1/types.go (Application,
// ApplicationSpec, ApplicationSource, SyncPolicy, SyncPolicyAutomated, Operation, SyncOperation,
// OperationInitiator, ApplicationStatus, SyncStatus, AppHealthStatus, OperationState, SyncOperationResult,
// ResourceStatus), which are the same in v3.5.7, the release the tests run.
type argoApplication struct {
	Metadata  argoMeta       `json:"metadata"`
	Spec      argoSpec       `json:"spec"`
	Operation *argoOperation `json:"operation,omitempty"`
	Status    argoStatus     `json:"status"`
}

type argoMeta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

type argoSpec struct {
	Source     *argoSource     `json:"source,omitempty"`
	Sources    []argoSource    `json:"sources,omitempty"`
	SyncPolicy *argoSyncPolicy `json:"syncPolicy,omitempty"`
}

type argoSource struct {
	RepoURL        string `json:"repoURL,omitempty"`
	Path           string `json:"path,omitempty"`
	TargetRevision string `json:"targetRevision,omitempty"`
}

type argoSyncPolicy struct {
	Automated *argoAutomated `json:"automated,omitempty"`
}

// argoAutomated: an automated policy with enabled: false is off (SyncPolicy.IsAutomatedSyncEnabled).
type argoAutomated struct {
	Enabled *bool `json:"enabled,omitempty"`
}

type argoOperation struct {
	Sync        *argoSyncOperation `json:"sync,omitempty"`
	InitiatedBy argoInitiator      `json:"initiatedBy,omitempty"`
}

type argoSyncOperation struct {
	Revision  string   `json:"revision,omitempty"`
	Revisions []string `json:"revisions,omitempty"`
	Prune     bool     `json:"prune,omitempty"`
}

type argoInitiator struct {
	Username  string `json:"username,omitempty"`
	Automated bool   `json:"automated,omitempty"`
}

type argoStatus struct {
	Sync           argoSyncStatus      `json:"sync,omitempty"`
	Health         argoHealth          `json:"health,omitempty"`
	OperationState *argoOperationState `json:"operationState,omitempty"`
	ReconciledAt   string              `json:"reconciledAt,omitempty"`
	Resources      []argoResource      `json:"resources,omitempty"`
}

type argoSyncStatus struct {
	Status    string   `json:"status,omitempty"`
	Revision  string   `json:"revision,omitempty"`
	Revisions []string `json:"revisions,omitempty"`
}

type argoHealth struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

type argoOperationState struct {
	Operation  argoOperation   `json:"operation"`
	Phase      string          `json:"phase"`
	Message    string          `json:"message,omitempty"`
	SyncResult *argoSyncResult `json:"syncResult,omitempty"`
}

type argoSyncResult struct {
	Revision  string   `json:"revision"`
	Revisions []string `json:"revisions,omitempty"`
}

// argoResource is one entry of status.resources; only those out of sync or not healthy are kept.
type argoResource struct {
	Kind      string      `json:"kind,omitempty"`
	Namespace string      `json:"namespace,omitempty"`
	Name      string      `json:"name,omitempty"`
	Status    string      `json:"status,omitempty"`
	Health    *argoHealth `json:"health,omitempty"`
}

// Argo CD's status codes Ferry acts on (SyncStatusCode, health.HealthStatusCode, synccommon.OperationPhase).
const (
	argoSynced      = "Synced"
	argoOutOfSync   = "OutOfSync"
	argoHealthy     = "Healthy"
	argoDegraded    = "Degraded"
	argoOpRunning   = "Running"
	argoOpFailed    = "Failed"
	argoOpError     = "Error"
	argoOpSucceeded = "Succeeded"
)

// applicationOf reads the fields Ferry uses from an Application, bounded.
func applicationOf(u *unstructured.Unstructured) (*argoApplication, error) {
	var app argoApplication
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &app); err != nil {
		return nil, fmt.Errorf("reading Argo CD Application %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	app.bound()
	return &app, nil
}

// bound cuts what an Application holds to what Ferry needs: its messages, and the resources that explain a sync
// or health status.
func (app *argoApplication) bound() {
	st := &app.Status
	st.Health.Message = text.Cut(st.Health.Message, argoMessageMax)
	if op := st.OperationState; op != nil {
		op.Message = text.Cut(op.Message, argoMessageMax)
	}
	kept := st.Resources[:0]
	for _, r := range st.Resources {
		if len(kept) == argoResourcesKept {
			break
		}
		if r.Status == argoOutOfSync || (r.Health != nil && r.Health.Status != "" && r.Health.Status != argoHealthy) {
			if r.Health != nil {
				r.Health.Message = text.Cut(r.Health.Message, argoMessageMax)
			}
			kept = append(kept, r)
		}
	}
	st.Resources = kept
}

// pruneApplication is the watch's transform: the cache keeps an Application as the fields Ferry reads.
func pruneApplication(obj any) (any, error) { return pruneAs(obj, applicationOf) }

// statusChanged says whether an update changed what Ferry judges a stage by. Argo CD stamps reconciledAt at every
// comparison (every few minutes for each Application); that alone wakes no stage.
func statusChanged(old, obj any) bool {
	return changedAs(old, obj, applicationOf, func(a, b *argoApplication) bool {
		a.Status.ReconciledAt, b.Status.ReconciledAt = "", ""
		return !reflect.DeepEqual(a.Status, b.Status) || !reflect.DeepEqual(a.Operation, b.Operation)
	})
}

// automated says whether Argo CD syncs the Application on its own once it sees a new commit.
func (app *argoApplication) automated() bool {
	p := app.Spec.SyncPolicy
	return p != nil && p.Automated != nil && (p.Automated.Enabled == nil || *p.Automated.Enabled)
}

// multiSource says whether the Application has several sources, whose revisions Argo CD reports as a list.
func (app *argoApplication) multiSource() bool { return len(app.Spec.Sources) > 0 }

// requested says whether an operation asks to sync revision; an operation naming no revision syncs the
// Application's target revisions, which include Ferry's commit once it is pushed.
func (op *argoOperation) requested(revision string) bool {
	if op == nil || op.Sync == nil {
		return false
	}
	s := op.Sync
	return s.Revision == revision || slices.Contains(s.Revisions, revision)
}

// lastOperationFor returns Argo CD's last operation when it was for revision.
func (app *argoApplication) lastOperationFor(revision string) *argoOperationState {
	op := app.Status.OperationState
	if op == nil {
		return nil
	}
	if r := op.SyncResult; r != nil && (r.Revision == revision || slices.Contains(r.Revisions, revision)) {
		return op
	}
	if s := op.Operation.Sync; s != nil && (s.Revision == revision || slices.Contains(s.Revisions, revision)) {
		return op
	}
	return nil
}

// atRevision says whether Argo CD compared the Application with revision (with each of its sources' revisions,
// for several sources).
func (app *argoApplication) atRevision(revision string) bool {
	s := app.Status.Sync
	return s.Revision == revision || slices.Contains(s.Revisions, revision)
}

// operating says whether a sync is asked for or running.
func (app *argoApplication) operating() bool {
	return app.Operation != nil || (app.Status.OperationState != nil && app.Status.OperationState.Phase == argoOpRunning)
}

// syncPatch is the merge patch that asks the Application to sync revision, or nil when nothing needs asking:
// Argo CD already compared it with revision, or already runs or ran a sync of it. An operation of someone else's
// still running is not overwritten: the caller retries once it is done.
func (app *argoApplication) syncPatch(revision, refresh string, prune bool) ([]byte, error) {
	done := app.Operation.requested(revision) || app.lastOperationFor(revision) != nil
	if done || (app.automated() && app.atRevision(revision)) {
		return nil, nil
	}
	meta := map[string]any{"annotations": map[string]string{argoRefreshAnnotation: refresh}}
	patch := map[string]any{"metadata": meta}
	if !app.automated() {
		if app.Operation != nil {
			return nil, fmt.Errorf("Argo CD Application %s/%s runs an operation %s; Ferry asks it to sync %s once it is done",
				app.Metadata.Namespace, app.Metadata.Name, describeOperation(app.Operation), shortSHA(revision))
		}
		sync := map[string]any{"prune": prune}
		if !app.multiSource() {
			// Exactly Ferry's commit. With several sources Argo CD takes a revision per source, and which source
			// is the stage's path is the Application's business: it syncs its target revisions, which hold it.
			sync["revision"] = revision
		}
		patch["operation"] = map[string]any{"sync": sync, "initiatedBy": map[string]any{"username": argoUsername}}
		meta["resourceVersion"] = app.Metadata.ResourceVersion // only if no operation was set since it was read
	}
	return json.Marshal(patch)
}

func describeOperation(op *argoOperation) string {
	who := op.InitiatedBy.Username
	if op.InitiatedBy.Automated {
		who = "automated sync"
	}
	what := "asked"
	if op.Sync != nil && op.Sync.Revision != "" {
		what = "syncing " + shortSHA(op.Sync.Revision)
	}
	return fmt.Sprintf("(%s, by %s)", what, orDefault(who, "someone"))
}

// assess judges the Application for a stage pinned at revision. Argo CD has applied Ferry's commit when it
// compared the Application with that commit, or when its last sync applied exactly that commit and no sync ran
// since: the branch may have moved on with commits for other stages' paths, and Argo CD then compares with the
// newer commit, whose rendering of this path is still the one it applied.
func (app *argoApplication) assess(ref ExternalRef, revision string) Health {
	st := app.Status
	op := app.lastOperationFor(revision)
	if op != nil && (op.Phase == argoOpFailed || op.Phase == argoOpError) {
		return Health{Degraded: true, Message: fmt.Sprintf("%s: Argo CD's sync of %s ended %s: %s", ref, shortSHA(revision), op.Phase, op.Message)}
	}
	at := app.atRevision(revision)
	if !at && (op == nil || op.Phase != argoOpSucceeded) {
		return Health{Message: fmt.Sprintf("waiting for %s to sync Ferry's commit %s: Argo CD reports %s",
			ref, shortSHA(revision), app.state())}
	}
	if app.operating() {
		return Health{Message: fmt.Sprintf("waiting for %s: Argo CD's sync of %s is running (%s)", ref, shortSHA(revision), app.state())}
	}
	switch {
	case st.Sync.Status == argoSynced && st.Health.Status == argoHealthy:
		return Health{Healthy: true, Message: fmt.Sprintf("%s: Synced and Healthy at %s", ref, shortSHA(revision))}
	case st.Sync.Status == argoSynced && st.Health.Status == argoDegraded:
		return Health{Degraded: true, Message: fmt.Sprintf("%s: Degraded at %s%s", ref, shortSHA(revision), app.why())}
	case st.Sync.Status == argoOutOfSync && at:
		drift := fmt.Sprintf("%s is OutOfSync at Ferry's commit %s: the cluster differs from Git%s", ref, shortSHA(revision), app.outOfSync())
		return Health{Message: drift, Drift: []string{drift}}
	}
	return Health{Message: fmt.Sprintf("waiting for %s to be Synced and Healthy after syncing %s: Argo CD reports %s%s",
		ref, shortSHA(revision), app.state(), app.why())}
}

// state says what Argo CD reports, in its words.
func (app *argoApplication) state() string {
	st := app.Status
	at := st.Sync.Revision
	if at == "" && len(st.Sync.Revisions) > 0 {
		at = fmt.Sprint(st.Sync.Revisions)
	}
	s := fmt.Sprintf("sync %s at %s, health %s", orDefault(st.Sync.Status, "Unknown"), orDefault(shortSHA(at), "no revision yet"),
		orDefault(st.Health.Status, "Unknown"))
	if st.ReconciledAt != "" {
		s += ", compared with Git at " + st.ReconciledAt
	}
	return s
}

// why names the least healthy resource, or Argo CD's own message.
func (app *argoApplication) why() string {
	st := app.Status
	if st.Health.Message != "" {
		return ": " + st.Health.Message
	}
	for _, r := range st.Resources {
		if r.Health != nil && r.Health.Status != "" && r.Health.Status != argoHealthy {
			return fmt.Sprintf(": %s %s/%s is %s %s", r.Kind, r.Namespace, r.Name, r.Health.Status, r.Health.Message)
		}
	}
	return ""
}

// outOfSync names the resources that differ from Git.
func (app *argoApplication) outOfSync() string {
	var names []string
	for _, r := range app.Status.Resources {
		if r.Status == argoOutOfSync {
			names = append(names, fmt.Sprintf("%s %s/%s", r.Kind, r.Namespace, r.Name))
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%v)", names)
}

var _ Syncer = (*ArgoCDSyncer)(nil)
