#include "daemon/plugins/elf_check.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string_view>

namespace foxworker {
namespace {

#if defined(__LP64__)
using Ehdr = Elf64_Ehdr;
using Shdr = Elf64_Shdr;
using Sym = Elf64_Sym;
constexpr unsigned char kClass = ELFCLASS64;
#define FOXW_ELF_ST_TYPE ELF64_ST_TYPE
#define FOXW_ELF_ST_BIND ELF64_ST_BIND
#else
using Ehdr = Elf32_Ehdr;
using Shdr = Elf32_Shdr;
using Sym = Elf32_Sym;
constexpr unsigned char kClass = ELFCLASS32;
#define FOXW_ELF_ST_TYPE ELF32_ST_TYPE
#define FOXW_ELF_ST_BIND ELF32_ST_BIND
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr unsigned char kData = ELFDATA2LSB;
#else
constexpr unsigned char kData = ELFDATA2MSB;
#endif

#if defined(__x86_64__)
constexpr int kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr int kMachine = EM_AARCH64;
#elif defined(__i386__)
constexpr int kMachine = EM_386;
#elif defined(__arm__)
constexpr int kMachine = EM_ARM;
#elif defined(__riscv)
constexpr int kMachine = EM_RISCV;
#elif defined(__powerpc64__)
constexpr int kMachine = EM_PPC64;
#elif defined(__s390x__)
constexpr int kMachine = EM_S390;
#else
constexpr int kMachine = -1;  // unknown here: not checked
#endif

std::string MachineName(int m) {
  switch (m) {
    case EM_X86_64: return "x86-64";
    case EM_AARCH64: return "aarch64";
    case EM_386: return "i386";
    case EM_ARM: return "arm";
    case EM_RISCV: return "riscv";
    case EM_PPC64: return "ppc64";
    case EM_S390: return "s390";
  }
  return "machine " + std::to_string(m);
}

// The file, read with pread: a file truncated while it is read (a plugin
// rebuilt in place during a reload) gives short reads, not SIGBUS as a
// mapping would.
class File {
 public:
  ~File() {
    if (fd_ >= 0) close(fd_);
  }
  Status Open(const std::string& path) {
    // O_NONBLOCK: a FIFO swapped in after the caller's stat() must not block.
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) return Status::NotFound(std::string("cannot open: ") + strerror(errno));
    struct stat st;
    if (fstat(fd_, &st) != 0) return Status::NotFound(std::string("cannot stat: ") + strerror(errno));
    if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) return Status::InvalidArgument("not a shared object (the file is empty)");
    return Status::Ok();
  }
  // Reads `len` bytes at `off` into `out`; false unless all were there.
  bool ReadAt(uint64_t off, uint64_t len, void* out) const {
    if (off > size_ || len > size_ - off) return false;
    auto* p = static_cast<char*>(out);
    while (len > 0) {
      ssize_t n = pread(fd_, p, len, static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      off += static_cast<uint64_t>(n);
      len -= static_cast<uint64_t>(n);
    }
    return true;
  }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
};

template <typename T>
bool Read(const File& f, uint64_t off, T* out) {
  return f.ReadAt(off, sizeof(T), out);
}

// A dynamic string table larger than this is not one a plugin has.
constexpr uint64_t kMaxStringTable = 64u << 20;

}  // namespace

Status CheckElfPlugin(const std::string& path, const std::vector<std::string>& required) {
  File file;
  Status s = file.Open(path);
  if (!s.ok()) return s;
  unsigned char ident[EI_NIDENT];
  if (!file.ReadAt(0, EI_NIDENT, ident) || std::memcmp(ident, ELFMAG, SELFMAG) != 0)
    return Status::InvalidArgument("not a shared object (no ELF header)");
  if (ident[EI_CLASS] != kClass)
    return Status::InvalidArgument(std::string("an ELF file of the wrong class (") +
                                   (ident[EI_CLASS] == ELFCLASS32 ? "32-bit" : "64-bit") +
                                   " while this foxworkerd is " +
                                   (kClass == ELFCLASS32 ? "32-bit" : "64-bit") + ")");
  if (ident[EI_DATA] != kData)
    return Status::InvalidArgument("an ELF file of the other byte order");
  Ehdr eh;
  if (!Read(file, 0, &eh)) return Status::InvalidArgument("a truncated ELF file");
  if (kMachine >= 0 && eh.e_machine != kMachine)
    return Status::InvalidArgument("built for " + MachineName(eh.e_machine) + ", not " +
                                   MachineName(kMachine));
  if (eh.e_type != ET_DYN)
    return Status::InvalidArgument(std::string("not a shared object (ELF type ") +
                                   (eh.e_type == ET_EXEC  ? "EXEC, a program"
                                    : eh.e_type == ET_REL ? "REL, an object file: link it with -shared"
                                                          : std::to_string(eh.e_type).c_str()) +
                                   ")");
  if (eh.e_shoff == 0 || eh.e_shnum == 0) return Status::Ok();  // no sections: dlsym decides
  if (eh.e_shentsize != sizeof(Shdr)) return Status::InvalidArgument("a malformed ELF file");

  std::set<std::string_view> missing(required.begin(), required.end());
  for (uint64_t i = 0; i < eh.e_shnum && !missing.empty(); ++i) {
    Shdr sh;
    if (!Read(file, eh.e_shoff + i * sizeof(Shdr), &sh))
      return Status::InvalidArgument("a truncated ELF file (section headers)");
    if (sh.sh_type != SHT_DYNSYM) continue;
    Shdr strtab;
    if (sh.sh_link >= eh.e_shnum ||
        !Read(file, eh.e_shoff + uint64_t{sh.sh_link} * sizeof(Shdr), &strtab))
      return Status::InvalidArgument("a malformed ELF file (dynamic string table)");
    if (strtab.sh_size > kMaxStringTable)
      return Status::InvalidArgument("a malformed ELF file (dynamic string table)");
    std::string strings(strtab.sh_size, '\0');
    if (!file.ReadAt(strtab.sh_offset, strtab.sh_size, strings.data()))
      return Status::InvalidArgument("a truncated ELF file (strings)");
    if (sh.sh_entsize != sizeof(Sym)) return Status::InvalidArgument("a malformed ELF file");
    const uint64_t count = sh.sh_size / sizeof(Sym);
    for (uint64_t j = 0; j < count && !missing.empty(); ++j) {
      Sym sym;
      if (!Read(file, sh.sh_offset + j * sizeof(Sym), &sym))
        return Status::InvalidArgument("a truncated ELF file (symbols)");
      if (sym.st_shndx == SHN_UNDEF || FOXW_ELF_ST_TYPE(sym.st_info) != STT_FUNC) continue;
      const int bind = FOXW_ELF_ST_BIND(sym.st_info);
      if (bind != STB_GLOBAL && bind != STB_WEAK) continue;
      if (sym.st_name >= strtab.sh_size) continue;
      const char* name = strings.data() + sym.st_name;
      const size_t len = strnlen(name, strtab.sh_size - sym.st_name);
      missing.erase(std::string_view(name, len));
    }
  }
  if (!missing.empty())
    return Status::InvalidArgument("not a foxworker plugin (it does not export " +
                                   std::string(*missing.begin()) +
                                   "; build it with the SDK's FOXW_DECLARE_PLUGIN, FOXW_PLUGIN "
                                   "or FOXWORKER_PLUGIN)");
  return Status::Ok();
}

}  // namespace foxworker
