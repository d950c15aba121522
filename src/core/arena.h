/*
 * arena.h - bump allocator with a hard byte limit.
 *
 * An arena owns every allocation made while one unit of work is alive: a
 * decoded request, a response being built. Nothing is freed on its own; the
 * whole arena is reset or destroyed at the end of that lifetime, so freeing
 * is a non-event (as nginx does with its pools).
 *
 * Every arena has a limit. Decoders of untrusted bytes allocate from an arena
 * whose limit is proportional to the frame, so a hostile length field can
 * never make the process allocate more than the limit: arena_alloc() returns
 * NULL instead and the decoder reports an error.
 *
 * Invariants: every pointer returned is 16-byte aligned and zero-filled;
 * used <= limit at all times.
 */
#ifndef SLUICE_CORE_ARENA_H
#define SLUICE_CORE_ARENA_H

#include <stddef.h>

typedef struct arena_block arena_block;

typedef struct arena {
    arena_block *head; /* newest block first */
    size_t used;       /* bytes handed out plus block overhead */
    size_t limit;      /* hard cap on used */
} arena;

/* Prepares an empty arena that will never hold more than limit bytes. */
void arena_init(arena *a, size_t limit);

/* Returns n zeroed bytes, or NULL if n would push the arena past its limit
 * (or n is 0 or absurdly large). */
void *arena_alloc(arena *a, size_t n);

/* Returns count * size zeroed bytes, with overflow checking. */
void *arena_calloc(arena *a, size_t count, size_t size);

/* Frees every block; the arena can be used again with the same limit. */
void arena_reset(arena *a);

#endif
