import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
  import Glibc
#endif

/// Turns `LOCKSTEP_…` environment variables into command-line arguments, so
/// every flag of every binary can also be set the way containers and
/// systemd units expect (docs/bare-metal.md, "Environment").
///
/// The rule: the option or flag `--foo-bar` is also `LOCKSTEP_FOO_BAR`. An
/// option takes the variable's value as is; a flag takes `true`/`false`
/// (also `1`/`0`, `yes`/`no`, `on`/`off`). What the command line gives wins:
/// a variable whose flag is on the command line is not used. A `LOCKSTEP_`
/// variable the command has no flag for is reported and ignored (one
/// environment file may serve several binaries), and so is one that names
/// `--help` or `--version`.
///
/// The command's flags are read from the parser's own description of the
/// command (its `--experimental-dump-help` JSON), so nothing lists them twice.
public struct EnvironmentArguments: Sendable, Equatable {
  /// The arguments to parse: the command line with the environment's
  /// flags inserted after the subcommand names.
  public var arguments: [String]
  /// One line per `LOCKSTEP_` variable that was ignored, saying why.
  public var warnings: [String]

  /// The prefix every variable carries.
  public static let prefix = "LOCKSTEP_"

  /// A variable whose value does not fit its flag.
  public struct InvalidValue: Error, CustomStringConvertible {
    /// What is wrong and how to fix it.
    public var description: String
  }

  /// Merges `environment` into `commandLine` (without the program name) for
  /// `command`.
  public init(
    command: any ParsableCommand.Type, commandLine: [String], environment: [String: String]
  ) throws(InvalidValue) {
    let variables = environment.filter { $0.key.hasPrefix(Self.prefix) }.sorted { $0.key < $1.key }
    guard !variables.isEmpty else {
      self.init(arguments: commandLine, warnings: [])
      return
    }
    guard let description = Self.describe(command) else {
      self.init(
        arguments: commandLine,
        warnings: ["ignoring \(variables.map(\.key).joined(separator: ", ")): cannot read the command's flags"])
      return
    }
    // The subcommand names at the front of the command line pick the
    // command whose flags apply.
    var target = description
    var depth = 0
    while depth < commandLine.count,
      let next = target.subcommands?.first(where: { $0.commandName == commandLine[depth] })
    {
      target = next
      depth += 1
    }
    let given = Set(
      commandLine[depth...].prefix { $0 != "--" }.compactMap { argument -> String? in
        guard argument.hasPrefix("--") else { return nil }
        return String(argument.dropFirst(2).prefix { $0 != "=" })
      })
    var inserted: [String] = []
    var warnings: [String] = []
    for (key, value) in variables {
      let name = String(key.dropFirst(Self.prefix.count)).lowercased().replacing("_", with: "-")
      guard let argument = target.argument(named: name), !["help", "version"].contains(name) else {
        warnings.append("ignoring \(key): \(Self.path(description, commandLine[..<depth])) has no --\(name)")
        continue
      }
      if given.contains(name) || given.contains("no-\(name)") { continue }
      switch argument.kind {
      case "option":
        inserted += ["--\(name)", value]
      case "flag":
        switch value.lowercased() {
        case "1", "true", "yes", "on": inserted.append("--\(name)")
        case "0", "false", "no", "off", "": break
        default:
          throw InvalidValue(
            description: "\(key)='\(value)': --\(name) is a flag; set \(key) to true or false (or unset it)")
        }
      default:
        warnings.append("ignoring \(key): --\(name) is not an option")
      }
    }
    var arguments = Array(commandLine[..<depth])
    arguments += inserted
    arguments += commandLine[depth...]
    self.init(arguments: arguments, warnings: warnings)
  }

  init(arguments: [String], warnings: [String]) {
    self.arguments = arguments
    self.warnings = warnings
  }

  private static func path(_ root: CommandDescription, _ names: ArraySlice<String>) -> String {
    ([root.commandName] + names).joined(separator: " ")
  }

  private static func describe(_ command: any ParsableCommand.Type) -> CommandDescription? {
    try? JSONDecoder().decode(ToolDescription.self, from: Data(command._dumpHelp().utf8)).command
  }
}

extension EnvironmentArguments {
  /// The part of the parser's tool description (ToolInfoV0) read here.
  fileprivate struct ToolDescription: Decodable {
    var command: CommandDescription
  }

  fileprivate struct CommandDescription: Decodable {
    var commandName: String
    var subcommands: [CommandDescription]?
    var arguments: [ArgumentDescription]?

    func argument(named name: String) -> ArgumentDescription? {
      arguments?.first { argument in
        argument.names?.contains { $0.kind != "short" && $0.name == name } ?? false
      }
    }
  }

  fileprivate struct ArgumentDescription: Decodable {
    struct Name: Decodable {
      var kind: String
      var name: String
    }
    var kind: String
    var names: [Name]?
  }
}

extension ParsableCommand {
  /// Runs the command with its `LOCKSTEP_…` environment merged into the
  /// command line (`EnvironmentArguments`); the thin `main` of every binary.
  public static func mainWithEnvironment() {
    let commandLine = Array(CommandLine.arguments.dropFirst())
    do {
      let merged = try EnvironmentArguments(
        command: self, commandLine: commandLine, environment: ProcessInfo.processInfo.environment)
      for warning in merged.warnings {
        standardError("\(commandName): \(warning)\n")
      }
      main(merged.arguments)
    } catch {
      standardError("\(commandName): error: \(error)\n")
      Self.exit(withError: ExitCode(64))
    }
  }

  private static func standardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
  }

  private static var commandName: String {
    configuration.commandName ?? String(describing: self)
  }
}
