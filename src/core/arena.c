/*
 * arena.c - bump allocator with a hard byte limit. See arena.h.
 *
 * Blocks grow geometrically (4 KiB, 8 KiB, ... up to 1 MiB) so that a small
 * request costs one small malloc and a large one a handful. A single
 * allocation larger than the current block size gets a block of its own.
 */
#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN     16
#define ARENA_MIN_BLOCK 4096
#define ARENA_MAX_BLOCK (1u << 20)

struct arena_block {
    arena_block *next;
    size_t size; /* usable bytes in data[] */
    size_t off;  /* next free byte in data[] */
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

void arena_init(arena *a, size_t limit) {
    a->head = NULL;
    a->used = 0;
    a->limit = limit;
}

static size_t align_up(size_t n) { return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1); }

void *arena_alloc(arena *a, size_t n) {
    if (n == 0 || n > a->limit)
        return NULL;
    n = align_up(n);
    arena_block *b = a->head;
    if (b == NULL || b->size - b->off < n) {
        size_t want = b ? b->size * 2 : ARENA_MIN_BLOCK;
        if (want > ARENA_MAX_BLOCK)
            want = ARENA_MAX_BLOCK;
        if (want < n)
            want = n;
        size_t cost = sizeof(arena_block) + want;
        if (cost > a->limit - a->used) {
            /* Try the smallest block that fits before giving up. */
            want = n;
            cost = sizeof(arena_block) + want;
            if (cost > a->limit - a->used)
                return NULL;
        }
        b = malloc(cost);
        if (b == NULL)
            return NULL;
        b->size = want;
        b->off = 0;
        b->next = a->head;
        a->head = b;
        a->used += cost;
    }
    void *p = b->data + b->off;
    b->off += n;
    memset(p, 0, n);
    return p;
}

void *arena_calloc(arena *a, size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return arena_alloc(a, count * size);
}

void arena_reset(arena *a) {
    arena_block *b = a->head;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}
