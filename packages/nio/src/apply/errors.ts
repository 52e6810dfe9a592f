import { TransientError } from "@nio/runtime";

/** nixos-rebuild or nixos-anywhere ran and failed: Nix's own error is in the log tail. */
export class ApplyFailedError extends TransientError {
  override readonly name = "ApplyFailedError";
  constructor(
    reason: "BuildFailed" | "InstallFailed" | "Timeout",
    message: string,
    readonly logTail: string,
    readonly exitCode?: number | null,
  ) {
    super(reason, message);
  }
}
