package keystone

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
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

// cache is a size-bounded LRU of answers. Expired entries are dropped when met and
// otherwise age out through the LRU order, so memory stays bounded by size alone.
type cache struct {
	mu    sync.Mutex
	size  int
	order *list.List // front = most recently used; values are *entry
	items map[tokenKey]*list.Element
}

func newCache(size int) *cache {
	return &cache{size: size, order: list.New(), items: make(map[tokenKey]*list.Element)}
}

// get returns the live entry for key, if any.
func (c *cache) get(key tokenKey, now time.Time) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return entry{}, false
	}
	e := el.Value.(*entry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return entry{}, false
	}
	c.order.MoveToFront(el)
	return *e, true
}

// put stores e under e.key, evicting the least recently used entries beyond size.
func (c *cache) put(e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		*el.Value.(*entry) = e
		c.order.MoveToFront(el)
		return
	}
	c.items[e.key] = c.order.PushFront(&e)
	for c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*entry).key)
	}
}

// len returns the number of entries held, expired or not.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
