<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Frameworks;

use League\Flysystem\Filesystem;
use PHPUnit\Framework\TestCase;
use Symfony\Component\Config\FileLocator;
use Symfony\Component\DependencyInjection\ContainerBuilder;
use Symfony\Component\DependencyInjection\Loader\YamlFileLoader;
use TrioS3Rpc\Flysystem\TrioS3RpcAdapter;
use TrioS3Rpc\Tests\LiveServer;

/**
 * The Symfony services of php/README.md, loaded by Symfony's own DependencyInjection
 * YamlFileLoader (Debian's php-symfony-dependency-injection), the container compiled, and the
 * adapter it builds used through a Flysystem Filesystem, as league/flysystem-bundle does with
 * a storage's `adapter` service. The bundle itself is not at hand (not in Debian, Packagist
 * unreachable), so its `flysystem:` block is not run.
 */
final class SymfonyRecipeTest extends TestCase
{
    public function testTheServiceDefinitionBuildsAWorkingAdapter(): void
    {
        if (!class_exists(YamlFileLoader::class)) {
            self::fail("Symfony's dependency-injection is absent: run .ci/install-php");
        }
        $dir = sys_get_temp_dir() . '/trio-s3rpc-symfony-' . bin2hex(random_bytes(4));
        mkdir($dir);
        // The recipe names the bucket 'uploads'; this run's server calls its moto bucket 'moto'.
        $services = str_replace("'uploads', 'app'", "'moto', 'symfony-" . bin2hex(random_bytes(4)) . "'", RecipeBlock::after('symfony-services'), $count);
        self::assertSame(1, $count);
        file_put_contents("$dir/services.yaml", $services);
        putenv('TRIO_S3RPC_ADDRESS=' . LiveServer::env('TRIO_S3RPC_UNIX'));

        $container = new ContainerBuilder();
        (new YamlFileLoader($container, new FileLocator($dir)))->load('services.yaml');
        $container->getDefinition('trio_s3rpc.adapter.uploads')->setPublic(true);
        $container->compile(true);
        $adapter = $container->get('trio_s3rpc.adapter.uploads');
        unlink("$dir/services.yaml");
        rmdir($dir);

        self::assertInstanceOf(TrioS3RpcAdapter::class, $adapter);
        $storage = new Filesystem($adapter);
        $storage->write('docs/a.txt', 'from symfony', ['visibility' => 'public']);
        self::assertSame('from symfony', $storage->read('docs/a.txt'));
        self::assertSame('public', $storage->visibility('docs/a.txt'));
        self::assertSame('from symfony', file_get_contents($storage->publicUrl('docs/a.txt')));
        $storage->deleteDirectory('docs');
        self::assertFalse($storage->fileExists('docs/a.txt'));
    }
}
