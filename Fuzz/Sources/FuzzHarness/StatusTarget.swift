import Foundation
import Lockstep

/// `lockstep status`: a primary's ``NodeStatus`` (channel message 22) and
/// the arbiter's record (its `current` answer), decoded as the CLI does,
/// made into a ``ClusterStatus`` and rendered as text and JSON.
///
/// Input: a mode byte, a u16-length-prefixed part for the status and the
/// rest for the record. Mode bit 0 set: the parts are message bodies,
/// framed here (type 22 and type 35); clear: they are raw channel and
/// arbiter bytes.
///
/// Checks: the status survives re-encoding; the JSON is valid JSON whose
/// `vm`, `generation` and `protected` are the decoded values; every
/// address the CLI would connect to parses or is refused, never crashes.
public enum StatusTarget: FuzzTarget {
  public static let name = "status"

  public static func run(_ data: [UInt8]) {
    var reader = FuzzReader(data)
    let mode = reader.u8()
    var statusBytes = reader.blob()
    var recordBytes = reader.rest()
    if mode & 1 == 1 {
      var framed: [UInt8] = []
      LogFrame.frame(type: 22, body: statusBytes, into: &framed)
      statusBytes = framed
      framed = []
      LogFrame.frame(type: ArbiterMessage.FrameType.current, body: recordBytes, into: &framed)
      recordBytes = framed
    }
    var node: NodeStatus?
    var nodeError: String?
    do {
      switch try WireMessage.decode(statusBytes[...], at: 0)?.message {
      case .control(.status(let status)):
        node = status
        var bytes: [UInt8] = []
        ChannelMessage.status(status).encode(into: &bytes)
        let again = try WireMessage.decode(bytes[...], at: 0)
        expect(again?.message == .control(.status(status)), "\(status) does not survive re-encoding")
      case .control(.refuse(let reason)):
        nodeError = "vmm1 refused: \(reason)"
      default:
        nodeError = "answered something other than a status"
      }
    } catch {
      nodeError = "\(error)"
    }
    let record: ArbiterRecord
    do {
      guard case .current(let current) = try ArbiterMessage.decode(recordBytes[...])?.message else { return }
      record = current
    } catch {
      return
    }
    _ = HostPort(parsing: record.replicationAddress)
    _ = HostPort(parsing: record.serviceAddress)
    let status = ClusterStatus(record: record, node: node, nodeError: node == nil ? nodeError : nil)
    _ = status.text
    checkJSON(status)
  }

  static func checkJSON(_ status: ClusterStatus) {
    let json = status.json
    guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
      expect(false, "status --json printed invalid JSON: \(json)")
      return
    }
    expect(object["vm"] as? String == status.record.vm, "JSON vm \(String(describing: object["vm"]))")
    if status.record.generation < 1 << 53 {
      expect(
        (object["generation"] as? NSNumber)?.uint64Value == status.record.generation,
        "JSON generation \(String(describing: object["generation"]))")
    }
    expect(
      object["protected"] as? Bool == (status.node?.protected == true),
      "JSON protected \(String(describing: object["protected"]))")
  }

  // MARK: Seeds

  public static func seeds() -> [(name: String, bytes: [UInt8])] {
    func seed(_ name: String, _ status: ChannelMessage, _ record: ArbiterRecord) -> [(name: String, bytes: [UInt8])] {
      var statusBytes: [UInt8] = []
      status.encode(into: &statusBytes)
      let recordBytes = ArbiterMessage.current(record).encoded
      var raw = FuzzWriter()
      raw.u8(0)
      raw.blob(statusBytes)
      raw.raw(recordBytes)
      var bodies = FuzzWriter()
      bodies.u8(1)
      bodies.blob(Array(statusBytes[8..<(statusBytes.count - 4)]))
      bodies.raw(Array(recordBytes[8..<(recordBytes.count - 4)]))
      return [(name + "-raw", raw.bytes), (name + "-bodies", bodies.bytes)]
    }
    var alone = WireTarget.status()
    alone.role = "primary-alone"
    alone.protected = false
    alone.backup = ""
    alone.lastHeartbeatMilliseconds = .max
    alone.cloning = false
    alone.lastCloneMilliseconds = 250
    var quoted = WireTarget.status()
    quoted.node = "vmm\"1\\\n\t\u{1}"
    quoted.backup = "é ü 日本"
    return seed("protected", .status(WireTarget.status()), ArbiterTarget.record)
      + seed("alone", .status(alone), ArbiterTarget.record)
      + seed("quoted", .status(quoted), ArbiterTarget.record)
      + seed("refused", .refuse(reason: "only the primary answers"), ArbiterTarget.record)
      + seed(
        "never-started", .statusRequest,
        ArbiterRecord(vm: "kv", generation: 0, holder: nil, serviceAddress: "", replicationAddress: ""))
  }
}
