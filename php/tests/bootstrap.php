<?php

declare(strict_types=1);

/*
 * Autoloading for the tests without Composer (Packagist is not reachable everywhere):
 * this package from src/, Flysystem from its Debian source package (FLYSYSTEM_SOURCE, by
 * default .deps/flysystem as .ci/install-php unpacks it), league/mime-type-detection from
 * Debian's php-league-mime-type-detection. Where Composer works, vendor/autoload.php is used.
 */

if (is_file(__DIR__ . '/../vendor/autoload.php')) {
    require __DIR__ . '/../vendor/autoload.php';
} else {
    $flysystem = getenv('FLYSYSTEM_SOURCE') ?: __DIR__ . '/../.deps/flysystem';
    $prefixes = [
        'TrioS3Rpc\\Tests\\' => __DIR__ . '/',
        'TrioS3Rpc\\' => __DIR__ . '/../src/',
        'League\\Flysystem\\' => $flysystem . '/src/',
    ];
    spl_autoload_register(static function (string $class) use ($prefixes): void {
        foreach ($prefixes as $prefix => $dir) {
            if (str_starts_with($class, $prefix)) {
                $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                }
                return;
            }
        }
    });
    require_once '/usr/share/php/League/MimeTypeDetection/autoload.php';
    require_once $flysystem . '/src/AdapterTestUtilities/test-functions.php';
}
