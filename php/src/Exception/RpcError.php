<?php

declare(strict_types=1);

namespace TrioS3Rpc\Exception;

/**
 * The server answered the call with an error: one subclass per error code of the contract,
 * each with the machine-readable code, the human message and the optional details.
 * getMessage() gives the whole wire text "CODE: message (details)".
 */
abstract class RpcError extends \RuntimeException implements TrioS3RpcException
{
    /** @var array<string, class-string<RpcError>> */
    public const CLASSES = [
        'BUCKET_NOT_FOUND' => BucketNotFound::class,
        'FILE_NOT_FOUND' => FileNotFound::class,
        'INVALID_CONFIG' => InvalidConfig::class,
        'S3_OPERATION_FAILED' => S3OperationFailed::class,
        'PERMISSION_DENIED' => PermissionDenied::class,
        'INVALID_PATHNAME' => InvalidPathname::class,
        'BUCKET_ALREADY_EXISTS' => BucketAlreadyExists::class,
        'INVALID_VISIBILITY' => InvalidVisibility::class,
        'OPERATION_TIMEOUT' => OperationTimeout::class,
        'INVALID_REQUEST' => InvalidRequest::class,
        'METHOD_NOT_FOUND' => MethodNotFound::class,
        'UPLOAD_NOT_FOUND' => UploadNotFound::class,
        'SHUTTING_DOWN' => ShuttingDown::class,
        'CANCELLED' => Cancelled::class,
        'RELAY_UNAVAILABLE' => RelayUnavailable::class,
        'RESOURCE_EXHAUSTED' => ResourceExhausted::class,
        'OBJECT_CHANGED' => ObjectChanged::class,
        'INTERNAL_ERROR' => InternalError::class,
    ];

    final public function __construct(
        public readonly string $errorCode,
        public readonly string $errorMessage,
        public readonly string $details = '',
        ?\Throwable $previous = null,
    ) {
        $text = "$errorCode: $errorMessage" . ($details !== '' ? " ($details)" : '');
        parent::__construct($text, 0, $previous);
    }

    /** The exception for an error answer's text, "CODE: message (details)". */
    public static function fromWireText(string $text, ?\Throwable $previous = null): self
    {
        if (!\preg_match('~^([A-Z][A-Z0-9_]*): (.*)$~s', $text, $m)) {
            return new UnknownError('', $text, '', $previous);
        }
        [$code, $rest] = [$m[1], $m[2]];
        $details = '';
        // Details are the last balanced parenthesised group at the end of the text.
        if (\str_ends_with($rest, ')')) {
            $depth = 0;
            for ($i = \strlen($rest) - 1; $i >= 0; $i--) {
                $depth += $rest[$i] === ')' ? 1 : ($rest[$i] === '(' ? -1 : 0);
                if ($depth === 0) {
                    if ($i > 0 && $rest[$i - 1] === ' ') {
                        $details = \substr($rest, $i + 1, -1);
                        $rest = \substr($rest, 0, $i - 1);
                    }
                    break;
                }
            }
        }
        $class = self::CLASSES[$code] ?? UnknownError::class;
        return new $class($code, $rest, $details, $previous);
    }

    public function errorCode(): string
    {
        return $this->errorCode;
    }

    public function errorMessage(): string
    {
        return $this->errorMessage;
    }

    public function details(): string
    {
        return $this->details;
    }
}
