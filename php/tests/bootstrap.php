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
    $laravel = getenv('LARAVEL_SOURCE') ?: __DIR__ . '/../.deps/laravel';
    $prefixes = [
        'TrioS3Rpc\\Tests\\' => [__DIR__ . '/'],
        'TrioS3Rpc\\' => [__DIR__ . '/../src/'],
        'League\\Flysystem\\' => [$flysystem . '/src/'],
        // Laravel's own source (Debian trixie's php-laravel-framework), for the recipe test only.
        'Illuminate\\Support\\' => [
            "$laravel/src/Illuminate/Support/", "$laravel/src/Illuminate/Macroable/",
            "$laravel/src/Illuminate/Collections/", "$laravel/src/Illuminate/Conditionable/",
        ],
        'Illuminate\\' => ["$laravel/src/Illuminate/"],
    ];
    spl_autoload_register(static function (string $class) use ($prefixes): void {
        foreach ($prefixes as $prefix => $dirs) {
            if (str_starts_with($class, $prefix)) {
                foreach ($dirs as $dir) {
                    $file = $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                    if (is_file($file)) {
                        require $file;
                        return;
                    }
                }
            }
        }
    });
    foreach (["$laravel/src/Illuminate/Collections/helpers.php", "$laravel/src/Illuminate/Support/helpers.php"] as $helpers) {
        if (is_file($helpers)) {
            require_once $helpers;
        }
    }
    // Debian's packages of psr/container (for Laravel's container) and Symfony's
    // dependency-injection (for the Symfony recipe test), where installed.
    foreach (['Psr/Container', 'Psr/Http/Message', 'Symfony/Component/DependencyInjection', 'Symfony/Component/Yaml', 'Symfony/Component/Config'] as $package) {
        if (is_file("/usr/share/php/$package/autoload.php")) {
            require_once "/usr/share/php/$package/autoload.php";
        }
    }
    require_once '/usr/share/php/League/MimeTypeDetection/autoload.php';
    require_once $flysystem . '/src/AdapterTestUtilities/test-functions.php';
}
