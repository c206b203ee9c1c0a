# cython: language_level=3
"""grpcpy._cext_debug: measurement hooks for perf/, built only by debug builds
(GRPCPY_DEBUG=1 pip install -e . / `make debug`), so a release build carries
no test or measurement code.

count_allocations(fn, *args) counts the Python object allocations a piece of
code makes. The object allocator (PyObject_Malloc and friends) is wrapped by a
counting shim while it runs; objects served from a free list (tuples, floats,
freelist cdef classes) cost no allocation and are not counted, which is
exactly the cost the hot path should avoid.
"""
cdef extern from "Python.h":
    ctypedef struct PyMemAllocatorEx:
        void* ctx
        void* (*malloc)(void* ctx, size_t size) noexcept nogil
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize) noexcept nogil
        void* (*realloc)(void* ctx, void* ptr, size_t new_size) noexcept nogil
        void (*free)(void* ctx, void* ptr) noexcept nogil
    ctypedef enum PyMemAllocatorDomain:
        PYMEM_DOMAIN_OBJ
    void PyMem_GetAllocator(PyMemAllocatorDomain domain, PyMemAllocatorEx* allocator)
    void PyMem_SetAllocator(PyMemAllocatorDomain domain, PyMemAllocatorEx* allocator)

cdef PyMemAllocatorEx _orig_obj_alloc
cdef Py_ssize_t _alloc_count = 0


cdef void* _count_malloc(void* ctx, size_t size) noexcept nogil:
    global _alloc_count
    _alloc_count += 1
    return _orig_obj_alloc.malloc(_orig_obj_alloc.ctx, size)


cdef void* _count_calloc(void* ctx, size_t nelem, size_t elsize) noexcept nogil:
    global _alloc_count
    _alloc_count += 1
    return _orig_obj_alloc.calloc(_orig_obj_alloc.ctx, nelem, elsize)


cdef void* _count_realloc(void* ctx, void* ptr, size_t size) noexcept nogil:
    global _alloc_count
    if ptr == NULL:
        _alloc_count += 1
    return _orig_obj_alloc.realloc(_orig_obj_alloc.ctx, ptr, size)


cdef void _count_free(void* ctx, void* ptr) noexcept nogil:
    _orig_obj_alloc.free(_orig_obj_alloc.ctx, ptr)


def count_allocations(fn, *args):
    """Run fn(*args); return (result, number of object allocations it made)."""
    global _alloc_count
    cdef PyMemAllocatorEx counting
    cdef Py_ssize_t before
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &_orig_obj_alloc)
    counting.ctx = NULL
    counting.malloc = _count_malloc
    counting.calloc = _count_calloc
    counting.realloc = _count_realloc
    counting.free = _count_free
    before = _alloc_count
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &counting)
    try:
        result = fn(*args)
    finally:
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &_orig_obj_alloc)
    return result, _alloc_count - before
