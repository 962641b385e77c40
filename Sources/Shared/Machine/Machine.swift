import CLockstepKVM

/// A Lockstep virtual machine: KVM VM and vCPU, guest RAM, devices, the
/// input seam and the output sink, and the exit loop that ties them.
///
/// The vCPU thread owns it: create it and call ``run()`` on that thread.
/// Other threads reach it only through ``control``.
public final class Machine {
  /// What this machine is.
  public let configuration: MachineConfiguration
  /// Guest RAM.
  public let memory: GuestMemory
  /// The network device.
  public let net: NetDevice
  /// The disk, if configured.
  public let block: BlockDevice?
  /// Where nondeterministic inputs come from (replaced when a backup goes
  /// live).
  public internal(set) var inputs: any InputSource
  /// Where outputs go.
  public internal(set) var outputs: any OutputSink
  /// The live network, if the VM serves one.
  public internal(set) var network: (any NetworkPort)?
  /// Called on the vCPU thread when a replay needs an input its log does
  /// not have: returns what a backup that won the arbiter goes live with,
  /// or nil to stop the replay there.
  public var takeover: ((Machine, ExitPoint) -> Takeover?)?
  /// The guest's monotonic clock minus the host's CLOCK_MONOTONIC, in ns:
  /// 0 on the VM's first host, set when a backup goes live so the guest's
  /// clock continues where the log left it.
  public internal(set) var clockOffset: Int64 = 0
  /// The latest monotonic time the guest was given (clock or wait).
  public internal(set) var lastMonotonic: UInt64 = 0
  /// The latest clock reading the guest was given.
  public internal(set) var lastClock: ClockReading?
  /// How other threads stop this machine.
  public let control: MachineControl
  /// The exits so far.
  public internal(set) var trace: ExitTrace
  /// Exits handled so far (the next exit's sequence number).
  public internal(set) var exitCount: UInt64 = 0

  let system: KVMSystem
  let vm: VirtualMachine
  let vcpu: VirtualCPU
  let image: ElfImage

  /// Builds the machine: maps RAM, loads the image, sets up the boot
  /// structures and the vCPU. Throws a clear error for a bad configuration.
  public init(
    configuration: MachineConfiguration, inputs: any InputSource, outputs: any OutputSink,
    network: (any NetworkPort)?, control: MachineControl
  ) throws {
    let size = configuration.memorySize
    guard size % BootLayout.pageSize2M == 0, size >= BootLayout.minimumMemory, size <= BootLayout.maximumMemory
    else {
      throw MachineSetupError(
        "memory size \(size) bytes is invalid: give a multiple of 2 MiB between 8M and 3G (for example --memory 64M)")
    }
    let window = BootLayout.imageWindow(memorySize: size)
    let image: ElfImage
    do {
      image = try ElfImage(bytes: configuration.image, loadWindow: window)
    } catch {
      throw MachineSetupError("\(configuration.imagePath): \(error)")
    }
    let block = try configuration.diskPath.map { path throws(BlockDeviceError) in
      try BlockDevice(path: path, createSize: configuration.diskCreateSize)
    }
    let system = try KVMSystem(path: configuration.kvmDevicePath)
    let vm = try system.createVirtualMachine()
    let memory = try GuestMemory(size: size, userBase: BootLayout.userBase)
    try vm.map(memory)
    let vcpu = try vm.createVirtualCPU()
    try vcpu.setCPUID(.lockstep)
    for segment in image.segments {
      let target = try memory.systemRange(segment.guestAddress, count: segment.memorySize)
      target.initializeMemory(as: UInt8.self, repeating: 0)
      target.copyBytes(from: segment.fileBytes)
    }
    let boot = try BootLayout.build(
      in: memory, image: image, arguments: configuration.arguments, diskSize: block?.size ?? 0,
      resetState: vcpu.specialRegisters())
    try vcpu.setSpecialRegisters(boot.sregs)
    try vcpu.setRegisters(boot.regs)

    self.configuration = configuration
    self.memory = memory
    self.net = NetDevice(memory: memory)
    self.block = block
    self.inputs = inputs
    self.outputs = outputs
    self.network = network
    self.control = control
    self.trace = ExitTrace(keepsEntries: configuration.keepsExitTrace)
    self.system = system
    self.vm = vm
    self.vcpu = vcpu
    self.image = image
  }

  /// Runs the guest until it exits, faults, breaks the ABI or is stopped.
  /// Never throws: every way a VM can end is a ``MachineStop``.
  public func run() -> MachineStop {
    control.enter()
    defer { control.leave() }
    var stopNoticed: UInt64?
    while true {
      // Between two exits: where cloning copies memory and takes the state.
      if control.hasSafepoint { control.runSafepoints(self) }
      let exit: VirtualCPUExit
      do {
        exit = try vcpu.run()
      } catch {
        return .hypervisorError(error.description)
      }
      switch exit {
      case .mmioWrite(let address, let length, let value):
        if address == BootLayout.doorbell && length == 8 {
          if let stop = hypercall(descriptor: value) { return stop }
        } else if address == BootLayout.faultDoorbell {
          return faultStop(frame: value)
        } else {
          return .guestError(
            GuestError(
              "\(length)-byte store to 0x\(String(address, radix: 16)), which is neither RAM nor the doorbell"),
            at: currentPoint)
        }
      case .mmioRead(let address, let length):
        return .guestError(
          GuestError("\(length)-byte load from 0x\(String(address, radix: 16)), which is not RAM"), at: currentPoint)
      case .interrupted:
        // A stop takes effect at the guest's next exit; a guest that makes
        // none for two seconds is stopped where it is.
        guard control.stopRequested else { continue }
        let now = ClockReading.monotonicNanoseconds()
        if now - (stopNoticed ?? now) > 2_000_000_000 { return .stopped }
        if stopNoticed == nil { stopNoticed = now }
      case .shutdown:
        return .hypervisorError("the guest triple-faulted (KVM_EXIT_SHUTDOWN) at \(currentPoint)")
      case .halt:
        return .hypervisorError("the guest executed HLT at \(currentPoint)")
      case .portIO:
        return .guestError(GuestError("port I/O is not part of the guest ABI"), at: currentPoint)
      case .internalError(let suberror):
        return .hypervisorError("KVM internal error (suberror \(suberror)) at \(currentPoint)")
      case .failedEntry(let reason):
        return .hypervisorError("KVM could not enter the guest (hardware reason 0x\(String(reason, radix: 16)))")
      case .unhandled(let reason):
        return .hypervisorError("unexpected KVM exit reason \(reason) at \(currentPoint)")
      }
    }
  }

  /// The exit point the guest is at now (for reports).
  var currentPoint: ExitPoint {
    ExitPoint(sequence: exitCount, instructionPointer: vcpu.syncedInstructionPointer)
  }

  /// A digest of all guest RAM: two machines that ran the same execution
  /// have the same digest.
  public func memoryDigest() -> UInt64 {
    var hasher = StableHasher()
    let chunk: UInt64 = 1 << 20
    var address: UInt64 = 0
    while address < memory.size {
      if let range = try? memory.systemRange(address, count: min(chunk, memory.size - address)) {
        hasher.combine(bytes: UnsafeRawBufferPointer(range))
      }
      address += chunk
    }
    return hasher.finalize()
  }

  /// Reads the exception frame a ring-0 stub reported and stops.
  private func faultStop(frame: UInt64) -> MachineStop {
    let point = currentPoint
    guard let sregs = try? vcpu.specialRegisters() else {
      return .hypervisorError("cannot read the vCPU state after a fault report")
    }
    guard sregs.cs.dpl == 0 else {
      return .guestError(GuestError("the guest stored to the fault doorbell from ring \(sregs.cs.dpl)"), at: point)
    }
    // Frame: rax, vector, error code, rip, cs, rflags, rsp, ss.
    guard let words = try? memory.systemRange(frame, count: 64) else {
      return .hypervisorError("the fault report's frame 0x\(String(frame, radix: 16)) is outside guest memory")
    }
    let word = { (index: Int) in UInt64(littleEndian: words.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self)) }
    let vector = word(1)
    return .fault(
      GuestFault(
        vector: vector, errorCode: word(2), instructionPointer: word(3), stackPointer: word(6),
        faultAddress: vector == 14 ? sregs.cr2 : nil, privilegeLevel: word(4) & 3))
  }
}
