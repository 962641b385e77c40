#if canImport(Glibc)
  import Glibc
#endif

/// The file operations certificates and credentials need: small files
/// written atomically with an exact mode, directories with an exact mode.
enum CredentialFiles {
  /// The largest credential file read (PEM files are a few KiB).
  static let readLimit = 1 << 20

  /// The kind of file at `path` (not following a final symbolic link), or
  /// nil when there is nothing there.
  static func fileType(_ path: String) -> mode_t? {
    var information = stat()
    guard lstat(path, &information) == 0 else { return nil }
    return information.st_mode & S_IFMT
  }

  /// Whether anything exists at `path`.
  static func exists(_ path: String) -> Bool { fileType(path) != nil }

  /// Whether `path` is a directory (following links).
  static func isDirectory(_ path: String) -> Bool {
    var information = stat()
    return stat(path, &information) == 0 && information.st_mode & S_IFMT == S_IFDIR
  }

  /// The permission bits of `path`.
  static func permissions(_ path: String) -> mode_t? {
    var information = stat()
    guard stat(path, &information) == 0 else { return nil }
    return information.st_mode & 0o7777
  }

  /// Reads a whole (small) file.
  static func read(_ path: String) throws(CertificateError) -> [UInt8] {
    let file: FileDescriptorOwner
    do {
      file = try FileDescriptorOwner(opening: path, flags: O_RDONLY)
    } catch {
      throw CertificateError(error.errno == ENOENT ? .missing : .io, "cannot read \(path): \(reason(error.errno))")
    }
    let fd = file.rawValue
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16 << 10)
    while bytes.count <= readLimit {
      let got = chunk.withUnsafeMutableBytes { raw in
        Result { () throws(SystemError) in
          try systemCall("read(\(path))") { Glibc.read(fd, raw.baseAddress, raw.count) }
        }
      }
      switch got {
      case .success(0): return bytes
      case .success(let count): bytes.append(contentsOf: chunk[..<count])
      case .failure(let error): throw CertificateError(.io, "cannot read \(path): \(reason(error.errno))")
      }
    }
    throw CertificateError(.invalidContent, "\(path) is larger than \(readLimit) bytes")
  }

  /// Reads a whole (small) text file.
  static func readText(_ path: String) throws(CertificateError) -> String {
    String(decoding: try read(path), as: UTF8.self)
  }

  /// Replaces `path` atomically with `bytes`, with permissions exactly
  /// `mode` (whatever the umask), synced to disk.
  static func write(_ bytes: [UInt8], to path: String, mode: mode_t) throws(CertificateError) {
    let temporary = "\(path).tmp-\(getpid())"
    do throws(SystemError) {
      do {
        let file = try FileDescriptorOwner(
          opening: temporary, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: mode)
        let fd = file.rawValue
        _ = try systemCall("fchmod(\(temporary))") { fchmod(fd, mode) }
        var offset = 0
        while offset < bytes.count {
          let start = offset
          offset += try bytes.withUnsafeBytes { raw in
            Result { () throws(SystemError) in
              try systemCall("write(\(temporary))") {
                Glibc.write(fd, raw.baseAddress.map { $0 + start }, raw.count - start)
              }
            }
          }.get()
        }
        _ = try systemCall("fsync(\(temporary))") { fsync(fd) }
      }
      _ = try systemCall("rename(\(temporary), \(path))") { rename(temporary, path) }
    } catch {
      unlink(temporary)
      throw CertificateError(.io, "cannot write \(path): \(reason(error.errno))")
    }
  }

  /// Writes text with ``write(_:to:mode:)``.
  static func write(text: String, to path: String, mode: mode_t) throws(CertificateError) {
    try write(Array(text.utf8), to: path, mode: mode)
  }

  /// Creates the directory `path` (its parent must exist), or takes an
  /// existing one, and sets its permissions to exactly `mode`.
  static func makeDirectory(_ path: String, mode: mode_t) throws(CertificateError) {
    if mkdir(path, mode) != 0 && errno != EEXIST {
      throw CertificateError(.io, "cannot create the directory \(path): \(reason(errno))")
    }
    guard isDirectory(path) else {
      throw CertificateError(.alreadyExists, "\(path) exists and is not a directory")
    }
    if chmod(path, mode) != 0 {
      throw CertificateError(.io, "cannot set the permissions of \(path): \(reason(errno))")
    }
  }

  /// Creates `path` and any missing parents (parents with mode 0755).
  static func makeDirectories(_ path: String, mode: mode_t) throws(CertificateError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    let parts = path.split(separator: "/")
    for (index, part) in parts.enumerated() {
      prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
      if index == parts.count - 1 {
        try makeDirectory(prefix, mode: mode)
      } else if !isDirectory(prefix) {
        try makeDirectory(prefix, mode: 0o755)
      }
    }
  }

  /// Removes the file at `path` if there is one.
  static func removeFile(_ path: String) throws(CertificateError) {
    if unlink(path) != 0 && errno != ENOENT {
      throw CertificateError(.io, "cannot remove \(path): \(reason(errno))")
    }
  }

  /// The text of an errno value, e.g. "Permission denied".
  static func reason(_ code: Int32) -> String {
    strerror(code).map { String(cString: $0) } ?? "errno \(code)"
  }

  /// `directory/name`.
  static func join(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
  }
}
