import CLockstepKVM

/// The CPUID table every Lockstep vCPU gets: fixed, identical on every host,
/// so a primary and a backup on different machines present the same CPU.
///
/// It advertises a plain x86-64 CPU (SSE2-level features, long mode) and
/// omits everything whose result could differ between runs or hosts:
/// RDRAND, RDSEED, the hypervisor leaves, XSAVE/AVX state, TSC details.
/// Where the hypervisor does not intercept CPUID executed in ring 3 (the
/// `kvm_pvm` software hypervisor), the guest sees the host's CPUID instead;
/// the guest SDK therefore never executes CPUID (docs/guest-abi.md).
public struct CPUIDTable: Sendable, Equatable {
  /// One leaf (and sub-leaf).
  public struct Entry: Sendable, Equatable {
    public var function: UInt32
    public var index: UInt32 = 0
    public var indexed: Bool = false
    public var eax: UInt32 = 0
    public var ebx: UInt32 = 0
    public var ecx: UInt32 = 0
    public var edx: UInt32 = 0

    var kvmEntry: kvm_cpuid_entry2 {
      var entry = kvm_cpuid_entry2()
      entry.function = function
      entry.index = index
      entry.flags = indexed ? UInt32(KVM_CPUID_FLAG_SIGNIFCANT_INDEX) : 0
      entry.eax = eax
      entry.ebx = ebx
      entry.ecx = ecx
      entry.edx = edx
      return entry
    }
  }

  /// The leaves.
  public var entries: [Entry]

  /// The fixed table of Lockstep guest ABI v1.
  public static let lockstep: CPUIDTable = {
    // "LockstepVCPU" in EBX, EDX, ECX order.
    let vendor: (UInt32, UInt32, UInt32) = (0x6b63_6f4c, 0x7065_7473, 0x5550_4356)
    let leaf1ECX: UInt32 = (1 << 0) | (1 << 9) | (1 << 13) | (1 << 19) | (1 << 20) | (1 << 23)
    let leaf1EDX: UInt32 =
      (1 << 0) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8) | (1 << 13) | (1 << 15)
      | (1 << 16) | (1 << 19) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26)
    return CPUIDTable(entries: [
      Entry(function: 0, eax: 7, ebx: vendor.0, ecx: vendor.2, edx: vendor.1),
      // Family 6, model 0, stepping 0; CLFLUSH line 8 quadwords; APIC id 0.
      Entry(function: 1, eax: 0x0000_0600, ebx: 0x0000_0800, ecx: leaf1ECX, edx: leaf1EDX),
      // Structured extended features: none (no RDSEED, no SMEP/SMAP, no AVX2).
      Entry(function: 7, index: 0, indexed: true),
      Entry(function: 0x8000_0000, eax: 0x8000_0008, ebx: vendor.0, ecx: vendor.2, edx: vendor.1),
      // LAHF in long mode; SYSCALL, NX, long mode.
      Entry(function: 0x8000_0001, ecx: 1 << 0, edx: (1 << 11) | (1 << 20) | (1 << 29)),
      // 40 physical, 48 virtual address bits.
      Entry(function: 0x8000_0008, eax: 0x0000_3028),
    ])
  }()

  /// A stable 64-bit fingerprint of the table, for the replication handshake.
  public var fingerprint: UInt64 {
    var hasher = StableHasher()
    for entry in entries {
      for word in [
        entry.function, entry.index, entry.indexed ? 1 : 0, entry.eax, entry.ebx, entry.ecx, entry.edx,
      ] {
        hasher.combine(UInt64(word))
      }
    }
    return hasher.finalize()
  }
}
