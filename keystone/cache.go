package keystone

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// tokenKey is the cache key of a token: its SHA-256, so that the cache never holds raw
// tokens for longer than a lookup takes.
type tokenKey [sha256.Size]byte

func keyOf(token string) tokenKey { return sha256.Sum256([]byte(token)) }

// entry is one cached answer: an Identity, or the refusal (err wraps ErrInvalidToken).
type entry struct {
	key      tokenKey
	identity Identity
	err      error
	expires  time.Time
}

// cache is a size-bounded LRU of answers (hashicorp/golang-lru). Expired entries are
// dropped when met and otherwise age out through the LRU order, so memory stays
// bounded by size alone.
//
// Not golang-lru's expirable.LRU: it gives every entry one TTL, while ours each
// expire at their own time (a refusal after NegativeTTL, an answer at the token's
// expiry when that comes before CacheTTL), and it runs a goroutine per cache.
type cache struct {
	lru *lru.Cache[tokenKey, entry]
}

func newCache(size int) *cache {
	l, err := lru.New[tokenKey, entry](size)
	if err != nil {
		panic(err) // size < 1: Config's defaults rule it out
	}
	return &cache{lru: l}
}

// get returns the live entry for key, if any.
func (c *cache) get(key tokenKey, now time.Time) (entry, bool) {
	e, ok := c.lru.Get(key)
	if !ok {
		return entry{}, false
	}
	if !now.Before(e.expires) {
		// A fresh answer stored meanwhile may go too: it costs one lookup more.
		c.lru.Remove(key)
		return entry{}, false
	}
	return e, true
}

// put stores e under e.key, evicting the least recently used entries beyond size.
func (c *cache) put(e entry) { c.lru.Add(e.key, e) }

// len returns the number of entries held, expired or not.
func (c *cache) len() int { return c.lru.Len() }
