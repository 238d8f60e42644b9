// See hook.h.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hook.h"

// Finds libggml-cpu's relocation for hook->symbol: its GOT entry, and the function itself.
static int find_entry(struct dl_phdr_info *info, size_t size, void *data) {
    (void) size;
    struct hook *hook = data;
    if (!strstr(info->dlpi_name, "libggml-cpu")) return 0;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!dyn) return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *tables[2] = {NULL, NULL};  // the PLT's relocations, then the others
    size_t sizes[2] = {0, 0};
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {  // the loader has already turned these addresses into absolute ones
        case DT_SYMTAB: symtab = (const ElfW(Sym) *) d->d_un.d_ptr; break;
        case DT_STRTAB: strtab = (const char *) d->d_un.d_ptr; break;
        case DT_JMPREL: tables[0] = (const ElfW(Rela) *) d->d_un.d_ptr; break;
        case DT_PLTRELSZ: sizes[0] = d->d_un.d_val; break;
        case DT_RELA: tables[1] = (const ElfW(Rela) *) d->d_un.d_ptr; break;
        case DT_RELASZ: sizes[1] = d->d_un.d_val; break;
        }
    }
    if (!symtab || !strtab) return 0;
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; tables[t] && i < sizes[t] / sizeof(ElfW(Rela)); i++) {
            const ElfW(Rela) *r = &tables[t][i];
            const size_t sym = ELF64_R_SYM(r->r_info);
            if (sym == 0 || strcmp(strtab + symtab[sym].st_name, hook->symbol) != 0) continue;
            void *self = dlopen(info->dlpi_name, RTLD_NOLOAD | RTLD_LAZY);
            hook->original = self ? dlsym(self, hook->symbol) : NULL;
            if (self) dlclose(self);
            hook->entry = hook->original ? (void **)(info->dlpi_addr + r->r_offset) : NULL;
            return hook->entry != NULL;
        }
    return 0;
}

int hook_point(struct hook *hook, void *fn) {
    if (!hook->entry) dl_iterate_phdr(find_entry, hook);
    if (!hook->entry) return -1;
    const uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    void *start = (void *)((uintptr_t) hook->entry & ~(page - 1));
    // The entry may sit in pages the loader made read-only after relocating (RELRO).
    if (mprotect(start, page, PROT_READ | PROT_WRITE) != 0) return -2;
    __atomic_store_n(hook->entry, fn ? fn : hook->original, __ATOMIC_SEQ_CST);
    return 0;
}
