package dashboard

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	ferryv1 "github.com/ferrycd/ferry/api/v1alpha1"
	"github.com/ferrycd/ferry/internal/promotionctl"
)

// listView is the All Promotions page.
type listView struct {
	Rows  []promotionRow
	Error string
}

func (s *Server) listView(r *http.Request) listView {
	var list ferryv1.PromotionList
	if err := s.opts.Client.List(r.Context(), &list, client.InNamespace(s.opts.Namespace)); err != nil {
		return listView{Error: "Listing Promotions: " + err.Error()}
	}
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		return a.Namespace < b.Namespace || (a.Namespace == b.Namespace && a.Name < b.Name)
	})
	now := time.Now()
	v := listView{Rows: []promotionRow{}}
	for i := range list.Items {
		v.Rows = append(v.Rows, newPromotionRow(&list.Items[i], now))
	}
	return v
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	pg := s.newPage("Promotions", "list", s.listView(r))
	pg.Live, pg.Watch = "/fragments/promotions", "*"
	s.render(w, http.StatusOK, "list", "layout", pg)
}

func (s *Server) handleListFragment(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "list", "list-fragment", s.newPage("", "", s.listView(r)))
}

// promotionPage reads one Promotion and builds its page; the error is shown as the page.
func (s *Server) promotionPage(w http.ResponseWriter, r *http.Request) (page, bool) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	p, err := promotionctl.Get(r.Context(), s.opts.Client, ns, name)
	if err != nil {
		s.renderError(w, statusForRead(err), "Promotion "+ns+"/"+name, err.Error())
		return page{}, false
	}
	pg := s.newPage("Promotion "+p.Name, "list", newPromotionView(p, time.Now()))
	pg.Live, pg.Watch = "/fragments"+promotionURL(ns, name), ns+"/"+name
	return pg, true
}

func (s *Server) handlePromotion(w http.ResponseWriter, r *http.Request) {
	if pg, ok := s.promotionPage(w, r); ok {
		s.render(w, http.StatusOK, "promotion", "layout", pg)
	}
}

func (s *Server) handlePromotionFragment(w http.ResponseWriter, r *http.Request) {
	if pg, ok := s.promotionPage(w, r); ok {
		s.render(w, http.StatusOK, "promotion", "promotion-fragment", pg)
	}
}

// statusForRead is the status of a page whose read failed: 404 for a Promotion that does not exist, the API
// server's own status otherwise.
func statusForRead(err error) int {
	if code := statusFor(err); code != http.StatusConflict {
		return code
	}
	return http.StatusNotFound // promotionctl.Get's "not found", which carries no API status
}

func (s *Server) handleConfirm(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	q := r.URL.Query()
	a, ok := findAction(q.Get("action"))
	if !ok {
		s.renderError(w, http.StatusBadRequest, "Unknown action", "action "+quote(q.Get("action"))+
			": want rollback, approve, abort or clear-hold")
		return
	}
	p, err := promotionctl.Get(r.Context(), s.opts.Client, ns, name)
	if err != nil {
		s.renderError(w, statusForRead(err), "Promotion "+ns+"/"+name, err.Error())
		return
	}
	v := newConfirmView(p, a, q.Get("stage"), q.Get("to"))
	s.render(w, http.StatusOK, "confirm", "layout", s.newPage(a.label+" — "+p.Name, "list", v))
}

func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.renderError(w, http.StatusRequestEntityTooLarge, "Request too large", "The form is larger than the dashboard accepts; nothing was changed.")
			return
		}
		s.renderError(w, http.StatusBadRequest, "Bad request", "Reading the form: "+err.Error()+"; nothing was changed.")
		return
	}
	form := r.PostForm
	if !s.validCSRF(form.Get("csrf")) {
		s.renderError(w, http.StatusForbidden, "Refused", "The form's security token is missing or belongs to an "+
			"earlier run of ferry dashboard: reload the page and try again. Nothing was changed.")
		return
	}
	a, ok := findAction(form.Get("action"))
	if !ok {
		s.renderError(w, http.StatusBadRequest, "Unknown action", "action "+quote(form.Get("action"))+
			": want rollback, approve, abort or clear-hold; nothing was changed.")
		return
	}
	stage, to := form.Get("stage"), form.Get("to")
	set, err := s.request(r.Context(), a, ns, name, stage, to)
	if err != nil {
		v := confirmView{Namespace: ns, Name: name, PromotionURL: promotionURL(ns, name), Action: a.name,
			Label: a.label, Stage: stage, Error: explain(err)}
		if p, readErr := promotionctl.Get(r.Context(), s.opts.Client, ns, name); readErr == nil {
			v = newConfirmView(p, a, stage, to)
			v.Error = explain(err)
		}
		s.render(w, statusFor(err), "confirm", "layout", s.newPage(a.label+" refused — "+name, "list", v))
		return
	}
	pg, ok := s.promotionPage(w, r)
	if !ok {
		return
	}
	pg.Canonical = promotionURL(ns, name)
	pg.Notice = "Asked for " + a.kind.Noun + " of stage " + stage + ": set " + set + ". Ferry's controller acts on " +
		"it and removes the annotation; this page follows it live."
	s.render(w, http.StatusOK, "promotion", "layout", pg)
}

// provenanceView is the provenance search and its answer.
type provenanceView struct {
	Query, Digest, Error string
	Records              []provenanceRow
}

type provenanceRow struct {
	promotionctl.ProvenanceRecord
	URL, CommitURL, Status string
	Time                   timeView
	Commit                 string
}

func (s *Server) handleProvenance(w http.ResponseWriter, r *http.Request) {
	v := provenanceView{Query: r.URL.Query().Get("digest")}
	status := http.StatusOK
	if v.Query != "" {
		if err := s.findProvenance(r, &v); err != nil {
			v.Error, status = err.Error(), http.StatusNotFound
		}
	}
	s.render(w, status, "provenance", "layout", s.newPage("Provenance", "provenance", v))
}

// findProvenance answers "where did this digest run, who approved it and who signed it?" from the Promotions'
// status with one List call, as `ferry provenance` does.
func (s *Server) findProvenance(r *http.Request, v *provenanceView) error {
	d, err := promotionctl.ParseDigestArg("digest", v.Query)
	if err != nil {
		return err
	}
	var list ferryv1.PromotionList
	if err := s.opts.Client.List(r.Context(), &list, client.InNamespace(s.opts.Namespace)); err != nil {
		return errors.New("listing Promotions: " + err.Error())
	}
	if v.Digest, err = d.Resolve(promotionctl.KnownDigests(list.Items)); err != nil {
		return errors.New(err.Error() + " in the status of any Promotion in " + s.newPage("", "", nil).Scope)
	}
	now := time.Now()
	for i := range list.Items {
		p := &list.Items[i]
		link := commitLinker(p)
		for _, rec := range promotionctl.Provenance(p, v.Digest) {
			row := provenanceRow{ProvenanceRecord: rec, URL: promotionURL(rec.Namespace, rec.Promotion),
				Status: string(rec.Outcome), Time: timeOf(rec.Time, now), Commit: shortCommit(rec.CommitSHA)}
			if rec.Where != promotionctl.WhereHistory {
				row.Status = string(rec.Phase)
			}
			if link != nil {
				row.CommitURL = link(rec.CommitSHA)
			}
			v.Records = append(v.Records, row)
		}
	}
	return nil
}
