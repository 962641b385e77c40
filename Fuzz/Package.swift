// swift-tools-version:6.1
// libFuzzer targets for Lockstep's decoders (Fuzz/README.md). Build with
// scripts/fuzz.sh, which passes the sanitizer flags:
//   swift build -c release --scratch-path Fuzz/.build --disable-dead-strip \
//     --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address
import PackageDescription

/// One executable per target: Fuzz/Targets/<name>/Fuzz.swift.
let targets = ["log", "logfile", "wire", "heartbeat", "arbiter", "status", "rings", "hypercall", "clone"]

let package = Package(
  name: "LockstepFuzz",
  platforms: [.macOS(.v15)],
  dependencies: [
    .package(name: "Lockstep", path: ".."),
    .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
  ],
  targets: [
    // The harnesses, the input format and the seed writers.
    .target(
      name: "FuzzHarness",
      dependencies: [
        .product(name: "Lockstep", package: "Lockstep"),
        .product(name: "Logging", package: "swift-log"),
      ],
      path: "Sources/FuzzHarness",
      swiftSettings: [.swiftLanguageMode(.v6)]
    )
  ]
    + targets.map { name in
      .executableTarget(
        name: "fuzz-\(name)",
        dependencies: ["FuzzHarness"],
        path: "Targets/\(name)",
        // libFuzzer supplies main().
        swiftSettings: [.unsafeFlags(["-parse-as-library"])]
      )
    }
)
