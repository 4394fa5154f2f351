<?php

declare(strict_types=1);

/*
 * Usage: php readme-block.php BLOCK.php   (run by tests/php/test_readme_blocks.py)
 *
 * Runs one code block of a README as a file of its own: any warning or notice is an
 * error; $s3 (this package's client) and $rpc (Spiral's RPC) are connected to the server
 * (TRIO_S3RPC_TCP) for blocks that use the one "as above"; Spiral's classes are the
 * stand-ins of tests/Doubles/spiral-goridge.php. An uncaught exception exits non-zero
 * with its text.
 */

require __DIR__ . '/../bootstrap.php';
require_once __DIR__ . '/../Doubles/spiral-goridge.php';

set_error_handler(static function (int $severity, string $message, string $file, int $line): bool {
    if (!(error_reporting() & $severity)) {
        return false;    // silenced with @ on purpose (the stand-ins' socket calls report their own errors)
    }
    throw new ErrorException($message, 0, $severity, $file, $line);
});

$s3 = \TrioS3Rpc\Client::connect((string) getenv('TRIO_S3RPC_TCP'));
$rpc = new \Spiral\Goridge\RPC\RPC(\Spiral\Goridge\Relay::create((string) getenv('TRIO_S3RPC_TCP')));
require $argv[1];
