package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"example.com/opsvc/gen"
	"example.com/opsvc/store"
)

// A page token is base64url(mac || payload): payload is the store's cursor
// as JSON, and mac the first 12 bytes of SHA-256 over a fixed prefix, the
// query the token belongs to (its binding: which list, which filters, which
// tenant scope) and the payload. A token used with other filters, or
// altered, does not check and is refused (400 naming page_token). Tokens
// hold nothing the caller may not see; the digest binds them to their query
// and catches corruption, it is not a secret.
const tokenMACSize = 12

// tokenPayload is a store.Cursor in a token.
type tokenPayload struct {
	Time int64  `json:"t"`
	ID   string `json:"i,omitempty"`
	Seq  int64  `json:"s,omitempty"`
}

func tokenMAC(binding string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte("opsvc page token v1\x00"))
	h.Write([]byte(binding))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(nil)[:tokenMACSize]
}

// encodePageToken is the token of position c in the list binding names.
func encodePageToken(binding string, c *store.Cursor) string {
	payload, _ := json.Marshal(tokenPayload{Time: c.Time.UnixNano(), ID: c.ID, Seq: c.Seq})
	return base64.RawURLEncoding.EncodeToString(append(tokenMAC(binding, payload), payload...))
}

// errBadPageToken is a token that is not one of this list's.
var errBadPageToken = &FieldError{Field: "page_token", Reason: "is not a token of this list with these filters (a token is valid only with the query that returned it)"}

// decodePageToken is encodePageToken backwards; a nil token is the start.
func decodePageToken(binding string, token *string) (*store.Cursor, error) {
	if token == nil {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(*token)
	if err != nil || len(raw) <= tokenMACSize {
		return nil, errBadPageToken
	}
	mac, payload := raw[:tokenMACSize], raw[tokenMACSize:]
	if !bytes.Equal(mac, tokenMAC(binding, payload)) {
		return nil, errBadPageToken
	}
	var p tokenPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, errBadPageToken
	}
	return &store.Cursor{Time: time.Unix(0, p.Time).UTC(), ID: p.ID, Seq: p.Seq}, nil
}

// pageOf is the store page a request asks for: limit (nil: no limit) and
// the position of its page_token in the list binding names.
func pageOf(binding string, limit *gen.Limit, token *gen.PageToken) (store.Page, error) {
	after, err := decodePageToken(binding, token)
	if err != nil {
		return store.Page{}, err
	}
	p := store.Page{After: after}
	if limit != nil {
		p.Limit = *limit
	}
	return p, nil
}

// pager is what a paged list needs to end its answer: the binding of its
// tokens and the request's URL, to link the next page.
type pager struct {
	binding string
	url     *url.URL
}

// next is the next page's token and Link header value, for the position c.
func (p pager) next(c *store.Cursor) (token, link string) {
	token = encodePageToken(p.binding, c)
	u := url.URL{Path: "/"}
	q := url.Values{}
	if p.url != nil {
		u.Path = p.url.Path
		q = p.url.Query()
	}
	q.Set("page_token", token)
	u.RawQuery = q.Encode()
	return token, "<" + u.String() + `>; rel="next"`
}

type requestURLKey struct{}

// requestURLFrom is the URL of the request ctx belongs to (see keepURL).
func requestURLFrom(ctx context.Context) *url.URL {
	u, _ := ctx.Value(requestURLKey{}).(*url.URL)
	return u
}

// keepURL is a strict middleware that puts the request's URL in the
// handler's context: a paged list links its next page with the same query.
func keepURL(f gen.StrictHandlerFunc, _ string) gen.StrictHandlerFunc {
	return func(c echo.Context, request any) (any, error) {
		r := c.Request()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), requestURLKey{}, r.URL)))
		return f(c, request)
	}
}
