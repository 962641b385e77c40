import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// The address clients reach the VM at, and how it moves at failover
/// (DESIGN.md §5). On one host the new primary simply binds the same
/// `HOST:PORT` (the old one's process, and its listener, are gone). Across
/// hosts a virtual IP moves: the new primary adds it to its interface and
/// announces it with a gratuitous ARP, so switches and clients learn the new
/// MAC at once (as keepalived does); a primary that halts removes it.
public struct ServiceAddress: Sendable {
  /// Where the VM's clients connect.
  public var address: HostPort
  /// The virtual IP with its prefix (`10.0.0.100/24`), when it moves.
  public var virtualIP: String?
  /// The interface that carries the virtual IP.
  public var device: String?

  /// Creates a service address.
  public init(address: HostPort, virtualIP: String? = nil, device: String? = nil) {
    self.address = address
    self.virtualIP = virtualIP
    self.device = device
  }

  /// Takes the virtual IP (if any): adds it to the device. Throws when the
  /// address cannot be added. Call ``announce(logger:)`` once the service
  /// listens on it.
  public func acquire(logger: Logger) throws {
    guard let virtualIP, let device else { return }
    let added = ExternalCommand.run(["ip", "address", "replace", virtualIP, "dev", device])
    guard added.status == 0 else {
      throw MachineSetupError(
        "cannot add the service VIP \(virtualIP) to \(device): \(added.errorOutput) (exit \(added.status)); "
          + "this needs CAP_NET_ADMIN and an existing interface (--service-dev)")
    }
    logger.info("took the service VIP", metadata: ["vip": "\(virtualIP)", "device": "\(device)"])
  }

  /// Sends gratuitous (unsolicited) ARPs for the virtual IP on a thread of
  /// its own, so every neighbour updates its cache now; returns the thread
  /// (nil without a VIP). Call after the service listens.
  public func announce(logger: Logger) -> NamedThread? {
    guard let virtualIP, let device else { return nil }
    let ip = String(virtualIP.prefix { $0 != "/" })
    return try? NamedThread(name: "arp-announce") {
      let announced = ExternalCommand.run(["arping", "-U", "-c", "2", "-w", "2", "-I", device, ip])
      if announced.status != 0 {
        logger.warning(
          "gratuitous ARP for \(ip) on \(device) failed (exit \(announced.status)): \(announced.errorOutput); clients learn the new address when their ARP entries expire"
        )
      }
    }
  }

  /// Gives the virtual IP up: a node that halts or stops, and a backup when
  /// it starts (a primary whose process was killed on that host left it
  /// there; two hosts answering ARP for it would split the clients).
  public func release(logger: Logger) {
    guard let virtualIP, let device else { return }
    let removed = ExternalCommand.run(["ip", "address", "del", virtualIP, "dev", device])
    if removed.status == 0 {
      logger.info("released the service VIP", metadata: ["vip": "\(virtualIP)"])
    }
  }

  /// Binds the service address, retrying while it is still in use (the old
  /// primary's listener on this host has not gone yet), for up to
  /// `timeout`.
  public func bind(machineWakeup: Wakeup, timeout: Duration = .seconds(10), logger: Logger) throws -> NetworkService {
    let deadline = ClockReading.monotonicNanoseconds() + timeout.wholeNanoseconds
    var logged = false
    while true {
      let failure: SystemError
      do {
        return try NetworkService(host: address.host, port: address.port, machineWakeup: machineWakeup)
      } catch {
        failure = error
      }
      let busy = failure.errno == EADDRINUSE || failure.errno == EADDRNOTAVAIL
      guard busy, ClockReading.monotonicNanoseconds() < deadline else { throw failure }
      if !logged {
        logger.info("service address \(address) still in use; retrying")
        logged = true
      }
      Wakeup.sleep(milliseconds: 5)
    }
  }
}
