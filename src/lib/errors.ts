import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The closed set of error types of SPEC §4, each with its HTTP status. */
export const ERROR_STATUS = {
  validation_error: 400,
  signature_error: 400,
  authentication_error: 401,
  permission_error: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limit_exceeded: 429,
  internal_error: 500,
  configuration_error: 500,
  unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorType = keyof typeof ERROR_STATUS;

export interface FieldError {
  param: string;
  message: string;
}

/** The one error class: thrown anywhere, rendered by the app's error handler in the SPEC §4 shape. */
export class ApiError extends Error {
  readonly type: ErrorType;
  readonly param: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    type: ErrorType,
    message: string,
    options: {
      param?: string;
      errors?: FieldError[];
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.type = type;
    this.param = options.param;
    this.errors = options.errors;
    this.headers = options.headers;
  }

  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.type];
  }

  toBody(): ErrorBody {
    return {
      error: {
        type: this.type,
        message: this.message,
        ...(this.param !== undefined ? { param: this.param } : {}),
        ...(this.errors !== undefined ? { errors: this.errors } : {}),
      },
    };
  }
}

export interface ErrorBody {
  error: { type: ErrorType; message: string; param?: string; errors?: FieldError[] };
}

export const validationError = (param: string, message: string) =>
  new ApiError("validation_error", message, { param });
