// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
  .swiftLanguageMode(.v6),
  .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
  name: "Lockstep",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "primary-vmm", targets: ["Primary"]),
    .executable(name: "lockstep", targets: ["LockstepCLI"]),
    .executable(name: "backup-vmm", targets: ["Backup"]),
    .executable(name: "arbiter", targets: ["Arbiter"]),
    .library(name: "Lockstep", targets: ["Lockstep"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
  ],
  targets: [
    // C that Swift cannot import directly: KVM ioctl numbers (macros) and
    // the variadic ioctl(2), plus the guest ABI header.
    .target(
      name: "CLockstepKVM",
      path: "Sources/CLockstepKVM"
    ),
    // Linux calls Glibc does not export (eventfd, getrandom, ppoll, epoll,
    // accept4, getaddrinfo-based listen).
    .target(
      name: "CLockstepLinux",
      path: "Sources/CLockstepLinux"
    ),
    // The system OpenSSL 3 (Debian libssl-dev) behind functions Swift can
    // call: TLS 1.3 contexts and connections, certificate issuance, SHA-256.
    .target(
      name: "CLockstepSSL",
      path: "Sources/CLockstepSSL",
      linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
    ),
    // The library: machine, devices, record/replay seam, transport.
    .target(
      name: "Lockstep",
      dependencies: [
        "CLockstepKVM",
        "CLockstepLinux",
        "CLockstepSSL",
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      path: "Sources/Shared",
      swiftSettings: strict
    ),
    // Flags shared by the executables.
    .target(
      name: "CommandLineOptions",
      dependencies: [
        "Lockstep",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/CommandLineOptions",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "Primary",
      dependencies: [
        "Lockstep",
        "CommandLineOptions",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/Primary",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "Backup",
      dependencies: [
        "Lockstep",
        "CommandLineOptions",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/Backup",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "Arbiter",
      dependencies: [
        "Lockstep",
        "CommandLineOptions",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/Arbiter",
      swiftSettings: strict
    ),
    .executableTarget(
      name: "LockstepCLI",
      dependencies: [
        "Lockstep",
        "CommandLineOptions",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      path: "Sources/CLI",
      swiftSettings: strict
    ),
    .testTarget(
      name: "LockstepTests",
      dependencies: [
        "Lockstep", "CommandLineOptions",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      path: "Tests/LockstepTests",
      swiftSettings: strict
    ),
  ]
)
